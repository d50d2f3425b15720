//! Probe round 18: holding the doc comments to their word where no earlier
//! test looked: the error policy's reports (`Failure`'s fields and text, a
//! custom policy that panics, `Abort`, the default report), `Error::resume`
//! of a kill or timeout, the documented aborts of `Mutex::lock` /
//! `Semaphore::acquire` / `BoundedSemaphore::acquire` while unwinding, the
//! `BoundedSemaphore` guard's panic, `join` from a greenlet's own link
//! callback, `Mutex`'s "would block forever", `joinall` / `killall` on
//! nothing, `with_outcome`, `WaitKind`'s text, mpsc receivers while
//! unwinding, and a few more edges. Each test quotes the doc sentence it
//! checks, with file:line. Tests marked `#[ignore = "BUG: ..."]` show a
//! sylvan bug; `#[ignore = "DOC: ..."]` a doc whose wording is wrong.

use std::cell::{Cell, RefCell};
use std::os::unix::process::ExitStatusExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::Output;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sylvan::sync::{BoundedSemaphore, Event, Mutex, Semaphore};
use sylvan::{
    Builder, ErrorPolicy, GreenletId, Outcome, Timeout, WaitKind, joinall, killall, sleep, spawn,
    with_timeout, yield_now,
};

use crate::util::{DropFlag, bounded, is_child, quiet, run_child, yield_until};

const MS: Duration = Duration::from_millis(1);
const LONG: Duration = Duration::from_secs(10);
const SIGABRT: i32 = 6;

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The message of a caught panic payload.
fn message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string payload>".to_owned()
    }
}

/// Records `format!("{failure}")` and the failure's fields for each
/// failure the policy sees.
type Reports = Rc<RefCell<Vec<(String, GreenletId, Option<String>, u32, bool)>>>;

fn recording_policy() -> Reports {
    let seen: Reports = Rc::default();
    let s = seen.clone();
    sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |f| {
        s.borrow_mut().push((
            f.to_string(),
            f.id,
            f.name.map(str::to_owned),
            f.spawned_at.line(),
            f.error.is_timeout(),
        ))
    })));
    seen
}

// ============================================================ error policy

// error.rs:99-105 `Failure`: "The greenlet's id." / "The greenlet's name,
// if it was given one." / "Where it was spawned." and its report names the
// greenlet, the spawn site, the panic's location and message.
#[test]
fn a_failure_names_its_greenlet_spawn_line_and_message() {
    bounded(|| {
        let seen = recording_policy();
        let b = Builder::new().name("worker");
        let body = || -> u8 { panic!("boom 18") };
        let line = line!() + 1;
        let g = b.spawn(body).unwrap();
        let id = g.id();
        drop(g);
        yield_until("the failure is reported", || !seen.borrow().is_empty());
        let (text, fid, name, fline, timeout) = seen.borrow()[0].clone();
        assert_eq!(fid, id);
        assert_eq!(name.as_deref(), Some("worker"));
        assert_eq!(fline, line, "spawned_at is the Builder::spawn call");
        assert!(!timeout);
        let head = format!("greenlet 'worker' ({id}) spawned at tests/it/probes18.rs:{line}:");
        assert!(text.starts_with(&head), "{text}");
        assert!(
            text.contains(" panicked at tests/it/probes18.rs:"),
            "{text}"
        );
        assert!(text.contains(":\nboom 18"), "{text}");
        sylvan::set_error_policy(ErrorPolicy::Report);
    })
}

// error.rs:104 "What went wrong: [`Error::Panicked`] or
// [`Error::TimedOut`]." and time.rs:121-122 "one that escapes the
// greenlet's body ends the greenlet as Error::TimedOut"; task.rs:405
// spawn_later is #[track_caller], so "Where it was spawned" is its call.
#[test]
fn an_escaped_timeout_is_reported_as_timed_out_with_the_spawn_later_line() {
    bounded(|| {
        let seen = recording_policy();
        let line = line!() + 1;
        let g = sylvan::spawn_later(MS, || {
            let _t = Timeout::start(MS);
            sleep(LONG);
        });
        let id = g.id();
        drop(g);
        yield_until("the failure is reported", || !seen.borrow().is_empty());
        let (text, fid, name, fline, timeout) = seen.borrow()[0].clone();
        assert_eq!((fid, name, fline, timeout), (id, None, line, true));
        let head = format!("greenlet {id} spawned at tests/it/probes18.rs:{line}:");
        assert!(text.starts_with(&head), "{text}");
        assert!(
            text.ends_with(": greenlet ended by an expired timeout"),
            "{text}"
        );
        sylvan::set_error_policy(ErrorPolicy::Report);
    })
}

// error.rs:153-154 `ErrorPolicy::Custom`: "A panic inside it is caught and
// printed; it harms neither the hub nor other greenlets."
#[test]
fn a_custom_policy_that_panics_is_caught_printed_and_stays_installed() {
    const NAME: &str = "p18_custom_policy_panics";
    if is_child(NAME) {
        bounded(|| {
            let calls = Rc::new(Cell::new(0u32));
            let c = calls.clone();
            sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |_| {
                c.set(c.get() + 1);
                panic!("policy itself fails");
            })));
            let other = spawn(|| {
                sleep(5 * MS);
                7
            });
            let a = Builder::new()
                .name("first")
                .spawn(|| panic!("one"))
                .unwrap();
            let b = Builder::new()
                .name("second")
                .spawn(|| panic!("two"))
                .unwrap();
            assert!(a.join().unwrap_err().is_panic());
            assert!(b.join().unwrap_err().is_panic());
            assert_eq!(other.join().unwrap(), 7, "other greenlets are unharmed");
            assert_eq!(
                calls.get(),
                2,
                "the policy is still installed after panicking"
            );
            println!("CHILD OK");
        });
        return;
    }
    let out = run_child(
        "probes18::a_custom_policy_that_panics_is_caught_printed_and_stays_installed",
        NAME,
    );
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("CHILD OK"));
    assert!(
        err.contains("sylvan: the custom error policy panicked while handling: greenlet 'first'"),
        "{err}"
    );
    assert!(
        err.contains("sylvan: the custom error policy panicked while handling: greenlet 'second'"),
        "{err}"
    );
}

// error.rs:150-151 `ErrorPolicy::Abort`: "Print the report and abort the
// process."
#[test]
fn the_abort_policy_prints_the_report_then_aborts() {
    const NAME: &str = "p18_abort_policy";
    if is_child(NAME) {
        sylvan::set_error_policy(ErrorPolicy::Abort);
        let g = Builder::new()
            .name("doomed")
            .spawn(|| panic!("fatal 18"))
            .unwrap();
        let _ = g.join();
        println!("STILL ALIVE");
        return;
    }
    let out = run_child(
        "probes18::the_abort_policy_prints_the_report_then_aborts",
        NAME,
    );
    let err = stderr_of(&out);
    assert_eq!(out.status.signal(), Some(SIGABRT), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("STILL ALIVE"));
    let report = err.find("greenlet 'doomed' (#").expect(&err);
    let abort = err
        .find("sylvan: aborting because the error policy is ErrorPolicy::Abort")
        .expect(&err);
    assert!(report < abort, "the report comes first: {err}");
    assert!(err.contains(":\nfatal 18"), "{err}");
}

// error.rs:143-146 `ErrorPolicy::Report`: "Report every failure once (the
// default ...): through the `log` crate ... when a logger takes it, on
// stderr otherwise." Joined (observed) failures are reported too.
#[test]
fn the_default_policy_reports_each_failure_once_on_stderr() {
    const NAME: &str = "p18_default_report";
    if is_child(NAME) {
        bounded(|| {
            let joined = Builder::new()
                .name("joined-one")
                .spawn(|| panic!("j"))
                .unwrap();
            let linked = Builder::new()
                .name("linked-one")
                .spawn(|| panic!("l"))
                .unwrap();
            linked.link(|_| {});
            let _detached = Builder::new()
                .name("detached-one")
                .spawn(|| panic!("d"))
                .unwrap();
            let timed = Builder::new()
                .name("timed-one")
                .spawn(|| {
                    let _t = Timeout::start(MS);
                    sleep(LONG);
                })
                .unwrap();
            assert!(joined.join().unwrap_err().is_panic());
            assert!(timed.join().unwrap_err().is_timeout());
            assert!(linked.wait(Some(LONG)));
            yield_until("detached died", || _detached.is_dead());
            sylvan::idle();
        });
        return;
    }
    let out = run_child(
        "probes18::the_default_policy_reports_each_failure_once_on_stderr",
        NAME,
    );
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    for name in ["joined-one", "linked-one", "detached-one", "timed-one"] {
        let pat = format!("greenlet '{name}' (#");
        assert_eq!(err.matches(&pat).count(), 1, "{name}: {err}");
    }
    assert!(
        err.contains("greenlet ended by an expired timeout"),
        "{err}"
    );
}

// error.rs:46-47 `Error::resume`: "Re-raises the failure on the current
// stack: ... a kill or timeout as a panic naming it."
#[test]
fn resume_of_a_kill_or_a_timeout_panics_naming_it() {
    bounded(|| {
        quiet();
        let k = spawn(|| sleep(LONG));
        yield_now();
        k.kill();
        let err = k.join().unwrap_err();
        assert!(err.is_killed());
        let p = catch_unwind(AssertUnwindSafe(|| err.resume())).unwrap_err();
        assert!(message(&*p).contains("killed"), "{}", message(&*p));

        let t = spawn(|| {
            let _t = Timeout::start(MS);
            sleep(LONG);
        });
        let err = t.join().unwrap_err();
        assert!(err.is_timeout());
        let p = catch_unwind(AssertUnwindSafe(|| err.resume())).unwrap_err();
        assert!(message(&*p).contains("timeout"), "{}", message(&*p));
    })
}

// error.rs:15-16 `Error::Panicked`: "The greenlet panicked; the [`Panic`]
// has the message, location and payload." (a formatted message).
#[test]
fn a_panicked_error_carries_the_formatted_message_and_the_panic_line() {
    bounded(|| {
        quiet();
        let line = line!() + 1;
        let g = spawn(|| -> () { panic!("n = {}", 18) });
        let err = g.join().unwrap_err();
        let p = err.panic().expect("a panic");
        assert_eq!(p.message(), "n = 18");
        let loc = p.location().expect("a location");
        assert!(
            loc.to_string()
                .starts_with(&format!("tests/it/probes18.rs:{line}:")),
            "{loc}"
        );
        assert!(err.to_string().contains("n = 18"), "{err}");
    })
}

// ============================================= sync: aborts while unwinding

/// A child that, from a destructor running during a kill, calls `f` on a
/// primitive another greenlet holds; prints "RETURNED" if it comes back.
fn block_in_destructor_child<P: 'static>(make: impl FnOnce() -> (P, Box<dyn FnOnce(&P)>)) {
    struct CallOnDrop(Option<Box<dyn FnOnce()>>);
    impl Drop for CallOnDrop {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    let (prim, call) = make();
    let prim = Rc::new(prim);
    let p = prim.clone();
    let g = spawn(move || {
        let _d = CallOnDrop(Some(Box::new(move || {
            call(&p);
            println!("RETURNED");
        })));
        sleep(LONG);
    });
    yield_now();
    g.kill();
    drop(prim);
}

fn assert_aborted_naming(out: &Output, what: &str) {
    let err = stderr_of(out);
    assert_eq!(out.status.signal(), Some(SIGABRT), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("RETURNED"));
    assert!(
        err.contains(&format!(
            "sylvan: {what} would have to wait, but the calling greenlet is unwinding"
        )),
        "{err}"
    );
    assert!(
        err.contains("try_"),
        "the message points at the try_* variant: {err}"
    );
}

// mutex.rs:135-139 `Mutex::lock`: "Called while the greenlet is unwinding
// ... when another greenlet holds the lock, it cannot wait ... and cannot
// return without the lock: it aborts the process with a message saying
// so."
#[test]
fn mutex_lock_in_a_destructor_while_another_holds_it_aborts_with_a_message() {
    const NAME: &str = "p18_mutex_abort";
    if is_child(NAME) {
        block_in_destructor_child(|| {
            let m = Mutex::new(0);
            std::mem::forget(m.try_lock().unwrap()); // held for good
            (m, Box::new(|m: &Mutex<i32>| drop(m.lock())))
        });
        return;
    }
    let out = run_child(
        "probes18::mutex_lock_in_a_destructor_while_another_holds_it_aborts_with_a_message",
        NAME,
    );
    assert_aborted_naming(&out, "Mutex::lock");
}

// semaphore.rs:158-162 `Semaphore::acquire`: "Called while the greenlet is
// unwinding ... when no permit is free, it cannot wait ... it aborts the
// process with a message saying so."
#[test]
fn semaphore_acquire_in_a_destructor_with_no_permit_aborts_with_a_message() {
    const NAME: &str = "p18_semaphore_abort";
    if is_child(NAME) {
        block_in_destructor_child(|| {
            let s = Semaphore::new(0);
            (s, Box::new(|s: &Semaphore| drop(s.acquire())))
        });
        return;
    }
    let out = run_child(
        "probes18::semaphore_acquire_in_a_destructor_with_no_permit_aborts_with_a_message",
        NAME,
    );
    assert_aborted_naming(&out, "Semaphore::acquire");
}

// bounded_semaphore.rs:51-53 `BoundedSemaphore::acquire`: "See
// [`Semaphore::acquire`], including what it does while the caller
// unwinds."
#[test]
fn bounded_semaphore_acquire_in_a_destructor_with_no_permit_aborts() {
    const NAME: &str = "p18_bounded_abort";
    if is_child(NAME) {
        block_in_destructor_child(|| {
            let s = BoundedSemaphore::new(1);
            s.acquire().forget();
            (s, Box::new(|s: &BoundedSemaphore| drop(s.acquire())))
        });
        return;
    }
    let out = run_child(
        "probes18::bounded_semaphore_acquire_in_a_destructor_with_no_permit_aborts",
        NAME,
    );
    let err = stderr_of(&out);
    assert_eq!(out.status.signal(), Some(SIGABRT), "{err}");
    assert!(
        err.contains("would have to wait, but the calling greenlet is unwinding"),
        "{err}"
    );
}

// mutex.rs:135-136: the abort is only "when another greenlet holds the
// lock"; a free lock is taken in a destructor like anywhere else, and
// semaphore.rs:158-159 likewise only "when no permit is free".
#[test]
fn lock_and_acquire_in_a_destructor_succeed_when_free() {
    bounded(|| {
        struct Take(Rc<Mutex<u32>>, Rc<Semaphore>);
        impl Drop for Take {
            fn drop(&mut self) {
                *self.0.lock() += 1;
                let p = self.1.acquire();
                p.forget();
            }
        }
        let m = Rc::new(Mutex::new(0));
        let s = Rc::new(Semaphore::new(1));
        let (m2, s2) = (m.clone(), s.clone());
        let g = spawn(move || {
            let _t = Take(m2, s2);
            sleep(LONG);
        });
        yield_now();
        g.kill();
        assert!(g.is_dead());
        assert_eq!(*m.lock(), 1);
        assert_eq!(s.available(), 0);
        assert!(!m.is_locked());
    })
}

// mutex.rs:154-155 `Mutex::lock_timeout`: "`None` if it stayed locked (or
// the caller is unwinding and it was locked)": at once, with no switch.
#[test]
fn lock_timeout_in_a_destructor_on_a_held_lock_is_none_without_switching() {
    bounded(|| {
        let m = Rc::new(Mutex::new(()));
        let held = m.lock();
        let got = Rc::new(Cell::new(None::<(bool, bool, Duration)>));
        struct Probe(Rc<Mutex<()>>, Rc<Cell<Option<(bool, bool, Duration)>>>);
        impl Drop for Probe {
            fn drop(&mut self) {
                // Runnable from here on: a switch inside lock_timeout would
                // run it.
                let ran = Rc::new(Cell::new(false));
                let r = ran.clone();
                drop(spawn(move || r.set(true)));
                let t0 = Instant::now();
                let got = self.0.lock_timeout(Duration::from_secs(2));
                self.1.set(Some((got.is_none(), ran.get(), t0.elapsed())));
            }
        }
        let (m2, got2) = (m.clone(), got.clone());
        let g = spawn(move || {
            let _p = Probe(m2, got2);
            sleep(LONG);
        });
        yield_now();
        g.kill();
        let (none, other_ran, took) = got.get().expect("the destructor ran");
        assert!(none, "a held lock gives None while unwinding");
        assert!(!other_ran, "no switch happened inside the destructor");
        assert!(took < Duration::from_secs(1), "{took:?}");
        drop(held);
    })
}

// bounded_semaphore.rs:15-16 "dropping a guard whose permit was also given
// back with `release` panics (during an unwind, it is ignored)."
// semaphore.rs:129 "The count stays at the bound".
#[test]
fn a_bounded_guard_dropped_after_a_manual_release_panics_and_keeps_the_bound() {
    bounded(|| {
        let sem = BoundedSemaphore::new(2);
        let g = sem.acquire();
        sem.release().unwrap(); // the mistake: the guard's permit given back by hand
        assert_eq!(sem.available(), 2);
        let p = catch_unwind(AssertUnwindSafe(|| drop(g))).unwrap_err();
        let msg = message(&*p);
        assert!(
            msg.contains("BoundedSemaphore released too many times"),
            "{msg}"
        );
        assert!(msg.contains("all 2 permits were free"), "{msg}");
        assert_eq!(sem.available(), 2, "the count stays at the bound");
        assert_eq!(sem.bound(), 2);
        assert!(sem.release().is_err());
    })
}

#[test]
fn a_bounded_guard_dropped_after_a_manual_release_during_an_unwind_is_ignored() {
    bounded(|| {
        let sem = Rc::new(BoundedSemaphore::new(1));
        let s = sem.clone();
        let g = spawn(move || {
            let _guard = s.acquire();
            s.release().unwrap();
            sleep(LONG);
        });
        yield_now();
        assert_eq!(sem.available(), 1);
        g.kill();
        assert!(
            g.join().unwrap_err().is_killed(),
            "killed, not a second panic"
        );
        assert_eq!(sem.available(), 1);
    })
}

// mutex.rs:30-31 "It is not reentrant: a greenlet that locks it twice
// waits for itself (and main then panics with "would block forever")."
// Run on a fresh thread (a fresh hub, with no bound armed: a pending
// timeout would be something that can wake main), watched from here.
#[test]
fn main_locking_a_mutex_twice_panics_with_would_block_forever() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        quiet();
        let m = Mutex::new(1);
        let _first = m.lock();
        let r = catch_unwind(AssertUnwindSafe(|| drop(m.lock())));
        let _ = tx.send(r.map_err(|p| message(&*p)));
    });
    let r = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("main waited for itself forever");
    let msg = r.expect_err("the second lock returned");
    assert!(msg.contains("would block forever"), "{msg}");
}

// ================================================================ lifecycle

// task.rs:567-569 `Greenlet::join`, # Panics: "When called from inside one
// of the greenlet's own link callbacks (it would wait for itself: the
// callback borrows the outcome)."
#[test]
fn join_from_inside_its_own_link_callback_panics_saying_so() {
    bounded(|| {
        let slot: Rc<RefCell<Option<sylvan::Greenlet<u32>>>> = Rc::default();
        let seen = Rc::new(RefCell::new(None::<Result<String, String>>));
        let g = spawn(|| 5u32);
        let (sl, se) = (slot.clone(), seen.clone());
        g.link(move |o| {
            assert!(matches!(o, &Outcome::Returned(&5)));
            let me = sl.borrow_mut().take().unwrap();
            let r = catch_unwind(AssertUnwindSafe(move || me.join()));
            *se.borrow_mut() = Some(match r {
                Ok(v) => Ok(format!("{v:?}")),
                Err(p) => Err(message(&*p)),
            });
        });
        let id = g.id();
        *slot.borrow_mut() = Some(g);
        yield_until("the callback ran", || seen.borrow().is_some());
        let r = seen.borrow_mut().take().unwrap();
        let msg = r.expect_err("join inside its own callback returned");
        assert!(msg.contains(&format!("join() on greenlet {id}")), "{msg}");
        assert!(msg.contains("own link callbacks"), "{msg}");
    })
}

// The same callback may join *another* greenlet's handle: the panic is
// only for "one of the greenlet's own link callbacks" (task.rs:567-568).
#[test]
fn join_of_another_greenlet_from_a_link_callback_is_fine() {
    bounded(|| {
        let other = spawn(|| 9u32);
        let slot = Rc::new(RefCell::new(Some(other)));
        let got = Rc::new(Cell::new(0u32));
        let g = spawn(|| 1u32);
        let (sl, gt) = (slot.clone(), got.clone());
        g.link(move |_| {
            let o = sl.borrow_mut().take().unwrap();
            gt.set(o.join().unwrap());
        });
        assert_eq!(g.join().unwrap(), 1);
        assert_eq!(
            got.get(),
            9,
            "join waits for the callback, which joined the other"
        );
    })
}

// task.rs:792 `joinall`: "Waits until every greenlet is dead, at most
// `timeout`; true if all are." and task.rs:799-803 `killall`: with nothing
// listed, nothing survives. Both return at once.
#[test]
fn joinall_and_killall_of_nothing_return_at_once() {
    bounded(|| {
        let none: [sylvan::Greenlet<()>; 0] = [];
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let other = spawn(move || r.set(true));
        assert!(joinall(&none, None));
        assert!(joinall(&none, Some(Duration::ZERO)));
        assert_eq!(killall(&none, None), Ok(()));
        assert_eq!(killall(&none, Some(Duration::ZERO)), Ok(()));
        assert!(!ran.get(), "none of them switched");
        other.join().unwrap();
    })
}

// task.rs:800-803 killall: "[`Survivors`] lists the greenlets still alive
// when the timeout passed." Only the survivors, in the given order.
#[test]
fn killall_survivors_lists_only_those_still_alive() {
    bounded(|| {
        let stubborn = |n: u32| {
            spawn(move || {
                for _ in 0..n {
                    let _ = catch_unwind(|| sleep(LONG));
                }
            })
        };
        let gs = vec![stubborn(3), spawn(|| sleep(LONG)), stubborn(3)];
        yield_now();
        let err = killall(&gs, Some(5 * MS)).unwrap_err();
        assert_eq!(err.0, [gs[0].id(), gs[2].id()]);
        assert_eq!(
            err.to_string(),
            format!(
                "2 greenlet(s) survived the kill: {} {}",
                gs[0].id(),
                gs[2].id()
            )
        );
        assert!(gs[1].is_dead());
        for g in &gs {
            g.kill_nowait();
        }
        let _ = killall(&gs, Some(Duration::from_secs(1)));
    })
}

// task.rs:662-663 `with_outcome`: "How it ended, for a dead greenlet;
// `None` while it lives". task.rs:220-221 "It was killed (a normal exit
// for links, as in gevent)."
#[test]
fn with_outcome_is_none_while_alive_and_reports_each_ending() {
    bounded(|| {
        quiet();
        let g = spawn(|| 3u8);
        assert_eq!(g.with_outcome(|_| ()), None, "not started");
        yield_now();
        assert!(matches!(
            g.with_outcome(|o| matches!(o, &Outcome::Returned(&3))),
            Some(true)
        ));

        let s = spawn(|| {
            sleep(LONG);
            1u8
        });
        yield_now();
        assert_eq!(s.with_outcome(|_| ()), None, "parked");
        s.kill();
        assert_eq!(s.with_outcome(|o| matches!(o, Outcome::Killed)), Some(true));

        let p = spawn(|| -> u8 { panic!("pp") });
        assert!(p.wait(Some(LONG)));
        let m = p.with_outcome(|o| match o {
            Outcome::Panicked(p) => p.message().to_owned(),
            _ => String::new(),
        });
        assert_eq!(m.as_deref(), Some("pp"));

        let t = spawn(|| {
            let _t = Timeout::start(MS);
            sleep(LONG);
        });
        assert!(t.wait(Some(LONG)));
        assert_eq!(
            t.with_outcome(|o| matches!(o, Outcome::TimedOut)),
            Some(true)
        );
    })
}

// task.rs:331-333 `Builder::stack_size`: "Sets the usable stack size in
// bytes; rounded up to whole pages, and to at least MIN_STACK_SIZE." Zero
// and one byte still give a working greenlet.
#[test]
fn tiny_stack_sizes_are_rounded_up_and_run() {
    bounded(|| {
        for bytes in [0usize, 1, 4095, 4097] {
            let g = Builder::new()
                .stack_size(bytes)
                .spawn(move || {
                    let buf = std::hint::black_box([7u8; 1024]);
                    sleep(MS);
                    buf.iter().map(|&b| u32::from(b)).sum::<u32>()
                })
                .unwrap();
            assert_eq!(g.join().unwrap(), 7 * 1024, "stack_size({bytes})");
        }
    })
}

// task.rs:36 `WaitKind`: "What a parked greenlet waits on (for error
// messages and dumps)": its text reads as the docs of each variant say.
#[test]
fn wait_kind_texts_name_what_is_waited_on() {
    let id: GreenletId = sylvan::current();
    assert_eq!(WaitKind::Nothing.to_string(), "nothing");
    assert_eq!(WaitKind::Yield.to_string(), "a yield");
    assert_eq!(WaitKind::Sleep.to_string(), "a sleep");
    assert_eq!(WaitKind::Idle.to_string(), "the hub becoming idle");
    assert_eq!(WaitKind::Sync("an event").to_string(), "an event");
    assert_eq!(
        WaitKind::Io { op: "read", fd: 3 }.to_string(),
        "socket read on fd 3"
    );
    assert_eq!(WaitKind::ThreadPool.to_string(), "a thread-pool job");
    assert_eq!(
        WaitKind::Join(id).to_string(),
        format!("the join of greenlet {id}")
    );
    assert!(WaitKind::Kill(id).to_string().contains(&id.to_string()));
    assert!(
        WaitKind::LinkCallbacks(id)
            .to_string()
            .contains("link callbacks")
    );
}

// ================================================================== timers

// time.rs:51 `sleep_until`: "Parks the current greenlet until `deadline`."
// A deadline already past still lets the others run once (it parks).
#[test]
fn sleep_until_a_past_deadline_returns_promptly() {
    bounded(|| {
        let t0 = Instant::now();
        sylvan::sleep_until(t0 - Duration::from_millis(50).min(t0.elapsed()));
        sylvan::sleep_until(Instant::now());
        assert!(t0.elapsed() < Duration::from_secs(1));
    })
}

// time.rs:216-220 `with_timeout`: "`Err(Elapsed)` when the timeout expired
// while `f` was blocked" - with a zero timeout and an `f` that never
// blocks, it never expired: `Ok`. And time.rs:123 "A greenlet that never
// blocks cannot be interrupted".
#[test]
fn a_zero_with_timeout_around_code_that_never_blocks_is_ok() {
    bounded(|| {
        let r = with_timeout(Duration::ZERO, || (0..1000u64).sum::<u64>());
        assert_eq!(r, Ok(499_500));
        // and the expired timer leaves nothing behind for the next park
        sleep(2 * MS);
    })
}

// time.rs:169-170 `Timeout::is_pending`: "True while armed: not expired and
// not cancelled." An expiry caught by the code itself leaves it not
// pending.
#[test]
fn a_caught_timeout_is_no_longer_pending() {
    bounded(|| {
        let t = Timeout::start(MS);
        assert!(t.is_pending());
        let p = catch_unwind(AssertUnwindSafe(|| sleep(LONG))).unwrap_err();
        assert!(t.is_own_payload(&*p));
        assert!(!t.is_pending());
        let far = Timeout::start(Duration::MAX);
        assert!(far.is_pending(), "Duration::MAX is armed, not an overflow");
        far.cancel();
    })
}

// ===================================================================== mpsc

// mpsc.rs:228-229 `Receiver::recv`: "Called while the greenlet unwinds
// (from a destructor during a kill or panic), it does not park: it
// returns a queued value or `RecvError`."
#[test]
fn recv_in_a_destructor_returns_a_queued_value_then_an_error_without_parking() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u32>();
        tx.send(11).unwrap();
        let got = Rc::new(RefCell::new(Vec::new()));
        struct Drain(sylvan::mpsc::Receiver<u32>, Rc<RefCell<Vec<String>>>);
        impl Drop for Drain {
            fn drop(&mut self) {
                for _ in 0..2 {
                    let r = self.0.recv();
                    self.1.borrow_mut().push(format!("{r:?}"));
                }
            }
        }
        let g2 = got.clone();
        let g = spawn(move || {
            let _d = Drain(rx, g2);
            sleep(LONG);
        });
        yield_now();
        g.kill();
        assert_eq!(*got.borrow(), ["Ok(11)", "Err(RecvError)"]);
        drop(tx); // the sender was alive all along
    })
}

// mpsc.rs:386-387 `OneshotReceiver::recv_timeout`: "Waits for the value
// at most `timeout`; on timeout the receiver is still usable."
#[test]
fn a_oneshot_receiver_is_usable_after_timeouts_and_a_try() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::oneshot::<&str>();
        assert_eq!(
            rx.recv_timeout(MS),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        );
        assert_eq!(rx.try_recv(), Err(std::sync::mpsc::TryRecvError::Empty));
        assert_eq!(
            rx.recv_timeout(Duration::ZERO),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        );
        std::thread::spawn(move || tx.send("late").unwrap());
        assert_eq!(rx.recv(), Ok("late"));
    })
}

// mpsc.rs:29-30 "When the last sender is dropped the receiver wakes and
// sees the channel disconnected." - with values still queued, they come
// first.
#[test]
fn values_queued_before_the_last_sender_dropped_come_before_disconnection() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u8>();
        let t = std::thread::spawn(move || {
            tx.send(1).unwrap();
            tx.send(2).unwrap();
        });
        t.join().unwrap();
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(rx.recv(), Err(std::sync::mpsc::RecvError));
        assert_eq!(
            rx.recv_timeout(LONG),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        );
    })
}

// ==================================================================== sync

// event.rs: an Event waited on from a destructor (sync/mod.rs:24-25 "waits
// and gets report "not ready" (`Event::wait` returns false, `Queue::get`
// returns `None`)") - but a set event is ready: true.
#[test]
fn event_wait_in_a_destructor_reports_the_events_state() {
    bounded(|| {
        let set = Rc::new(Event::new());
        set.set();
        let unset = Rc::new(Event::new());
        let out = Rc::new(Cell::new(None));
        struct W(Rc<Event>, Rc<Event>, Rc<Cell<Option<(bool, bool)>>>);
        impl Drop for W {
            fn drop(&mut self) {
                self.2.set(Some((self.0.wait(), self.1.wait())));
            }
        }
        let w = W(set.clone(), unset.clone(), out.clone());
        let g = spawn(move || {
            let _w = w;
            sleep(LONG);
        });
        yield_now();
        g.kill();
        assert_eq!(out.get(), Some((true, false)));
    })
}

// The drop flag helper proves a kill of an unstarted greenlet drops its
// body at once (task.rs:620-621 "A greenlet that has not started is
// cancelled on the spot (it is dead when this returns)").
#[test]
fn kill_nowait_of_an_unstarted_greenlet_drops_its_body_on_the_spot() {
    bounded(|| {
        let drops = Rc::new(Cell::new(0));
        let flag = DropFlag(drops.clone());
        let g = sylvan::spawn_later(LONG, move || drop(flag));
        g.kill_nowait();
        assert!(g.is_dead());
        assert!(!g.is_started());
        assert_eq!(drops.get(), 1);
        assert!(g.join().unwrap_err().is_killed());
    })
}

// ==================================================================== pools

// pool.rs:326-328 `Pool::spawn`, # Panics: "Called while the caller
// unwinds with the pool full, it cannot wait: see [`Semaphore::acquire`]"
// (which aborts the process with a message saying so).
#[test]
fn pool_spawn_in_a_destructor_with_the_pool_full_aborts() {
    const NAME: &str = "p18_pool_abort";
    if is_child(NAME) {
        let pool = Rc::new(sylvan::pool::Pool::new(1));
        pool.spawn(|| sleep(LONG));
        block_in_destructor_child(move || {
            (
                pool,
                Box::new(|p: &Rc<sylvan::pool::Pool>| {
                    p.spawn(|| ());
                }),
            )
        });
        return;
    }
    let out = run_child(
        "probes18::pool_spawn_in_a_destructor_with_the_pool_full_aborts",
        NAME,
    );
    let err = stderr_of(&out);
    assert_eq!(out.status.signal(), Some(SIGABRT), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("RETURNED"));
    assert!(
        err.contains("would have to wait, but the calling greenlet is unwinding"),
        "{err}"
    );
}

// pool.rs:379-380 `Pool::join`: "Parks until every greenlet of the pool is
// dead. Returns at once when the caller is unwinding." And pool.rs:385-386
// `join_timeout`: "true when the pool is empty" - false from a destructor
// with members alive.
#[test]
fn pool_join_in_a_destructor_returns_at_once() {
    bounded(|| {
        let pool = Rc::new(sylvan::pool::Pool::new(2));
        pool.spawn(|| sleep(LONG));
        let out = Rc::new(Cell::new(None));
        struct J(Rc<sylvan::pool::Pool>, Rc<Cell<Option<(bool, Duration)>>>);
        impl Drop for J {
            fn drop(&mut self) {
                let t0 = Instant::now();
                self.0.join();
                let empty = self.0.join_timeout(Duration::from_secs(2));
                self.1.set(Some((empty, t0.elapsed())));
            }
        }
        let j = J(pool.clone(), out.clone());
        let g = spawn(move || {
            let _j = j;
            sleep(LONG);
        });
        yield_now();
        g.kill();
        let (empty, took) = out.get().expect("the destructor ran");
        assert!(!empty);
        assert!(took < Duration::from_secs(1), "{took:?}");
        pool.kill();
        assert!(pool.is_empty());
    })
}

// ======================================================== round 18, part 2

// bounded_semaphore.rs:9-12 "a manual release that would raise the free
// permits past it is an error", bounded_semaphore.rs:43 "A semaphore with
// `permits` free permits, never more." At the largest bound, a release
// with every permit free must be `Err(ReleaseError)` like at any other.
#[test]
fn a_bounded_semaphore_at_usize_max_refuses_a_release_past_its_bound() {
    bounded(|| {
        let s = BoundedSemaphore::new(usize::MAX);
        let r = catch_unwind(AssertUnwindSafe(|| s.release()));
        assert!(
            matches!(r, Ok(Err(sylvan::sync::ReleaseError))),
            "release at the bound: {:?}",
            r.map_err(|p| message(&*p))
        );
        assert_eq!(s.available(), usize::MAX);
    })
}

// README.md "Coordination": "A getter killed before it ran takes nothing
// with it, so items keep their order, and a `Queue::bounded(n)` never holds
// more than `n`." But queue_core.rs:610-612 (the put docs): "Called while
// the greenlet unwinds ... it cannot wait: the item is accepted past the
// bound instead, so it is never lost." The second is the better behaviour
// (tested in probes10); the README's "never" was too strong and now names
// the exception, which this test pins.
#[test]
fn a_bounded_queue_holds_more_than_its_bound_only_for_puts_while_unwinding() {
    bounded(|| {
        let q = Rc::new(sylvan::sync::Queue::bounded(1));
        q.put(0u8).unwrap();
        struct PutOnDrop(Rc<sylvan::sync::Queue<u8>>);
        impl Drop for PutOnDrop {
            fn drop(&mut self) {
                let _ = self.0.put(1);
            }
        }
        let p = PutOnDrop(q.clone());
        let g = spawn(move || {
            let _p = p;
            sleep(LONG);
        });
        yield_now();
        g.kill();
        assert_eq!(
            q.len(),
            2,
            "the destructor's put was accepted past the bound"
        );
        assert!(
            q.try_put(3).unwrap_err().is_full(),
            "ordinary puts still see it full"
        );
    })
}

// async_result.rs:181-183 `AsyncResult::get`: "[`GetError::Unwinding`]
// when the caller is unwinding and nothing is stored yet (it cannot
// wait)"; async_result.rs:133-134 `wait`: "Returns false without waiting
// when the caller is unwinding and it is not ready."; a stored value is
// still returned while unwinding.
#[test]
fn async_result_getters_in_a_destructor_report_unwinding_or_the_value() {
    bounded(|| {
        type Ar = sylvan::sync::AsyncResult<u32, String>;
        let empty: Rc<Ar> = Rc::new(Ar::new());
        let full: Rc<Ar> = Rc::new(Ar::new());
        full.set(4).unwrap();
        let out = Rc::new(RefCell::new(Vec::<String>::new()));
        struct G(Rc<Ar>, Rc<Ar>, Rc<RefCell<Vec<String>>>);
        impl Drop for G {
            fn drop(&mut self) {
                let t0 = Instant::now();
                let mut o = self.2.borrow_mut();
                o.push(format!("{:?}", self.0.get()));
                o.push(format!("{:?}", self.0.get_timeout(Duration::from_secs(2))));
                o.push(format!("{}", self.0.wait()));
                o.push(format!("{}", self.0.wait_timeout(Duration::from_secs(2))));
                o.push(format!("{:?}", self.1.get()));
                o.push(format!("{}", self.1.wait()));
                o.push(format!("{}", t0.elapsed() < Duration::from_secs(1)));
            }
        }
        let gd = G(empty.clone(), full.clone(), out.clone());
        let g = spawn(move || {
            let _g = gd;
            sleep(LONG);
        });
        yield_now();
        g.kill();
        assert_eq!(
            *out.borrow(),
            [
                "Err(Unwinding)",
                "Err(Unwinding)",
                "false",
                "false",
                "Ok(4)",
                "true",
                "true"
            ]
        );
        assert_eq!(
            sylvan::sync::GetError::<String>::Unwinding.to_string(),
            "cannot wait for the async result: the calling greenlet is unwinding"
        );
    })
}

// sync/error.rs:3-5 "Errors that carry a value back (`AlreadySet<T>`,
// `Closed<T>`, `TryPutError<T>`) print it in `Debug` only as `..`, so
// `unwrap` works for any `T`"; async_result.rs:105 `fail`: "[`AlreadySet`]
// with `error` when a value or failure was stored before."
#[test]
fn already_set_hands_back_the_rejected_value_and_debugs_as_dots() {
    struct Opaque(u8); // neither Debug nor Clone
    let a: sylvan::sync::AsyncResult<Rc<Opaque>, Rc<Opaque>> = sylvan::sync::AsyncResult::new();
    a.set(Rc::new(Opaque(1))).unwrap(); // unwrap compiles for any T
    let back = a.fail(Rc::new(Opaque(2))).unwrap_err();
    assert_eq!(back.0.0, 2, "fail hands its error back");
    assert_eq!(format!("{back:?}"), "AlreadySet(..)");
    assert_eq!(back.to_string(), "the async result was already set");
    let again = a.set(Rc::new(Opaque(3))).unwrap_err();
    assert_eq!(again.0.0, 3);
    assert!(
        matches!(a.into_inner(), Some(Ok(v)) if v.0 == 1),
        "the first stays"
    );
}

// event.rs:119 `wait_deadline`: "Like [`wait`](Event::wait), until
// `deadline` at the latest." A deadline already past: false for an unset
// event, true for a set one, both at once.
#[test]
fn event_wait_deadline_in_the_past() {
    bounded(|| {
        let e = Event::new();
        let past = Instant::now();
        sleep(MS);
        let t0 = Instant::now();
        assert!(!e.wait_deadline(past));
        assert!(!e.wait_timeout(Duration::ZERO));
        e.set();
        assert!(e.wait_deadline(past));
        assert!(e.wait_timeout(Duration::ZERO));
        assert!(t0.elapsed() < Duration::from_secs(1));
        assert_eq!(e.waiters(), 0, "no registration left behind");
    })
}

// README.md "The model": "reported once (name, spawn site, message,
// location, and the backtrace when `RUST_BACKTRACE` asks)";
// runtime/src/greenlet.rs:91 `Panic::backtrace`: "The backtrace, when
// `RUST_BACKTRACE` asked for one."
#[test]
fn the_report_has_a_backtrace_only_when_rust_backtrace_asks() {
    const NAME: &str = "p18_backtrace";
    if is_child(NAME) {
        bounded(|| {
            let g = Builder::new()
                .name("bt")
                .spawn(|| panic!("with bt?"))
                .unwrap();
            let err = g.join().unwrap_err();
            println!("HAS_BT={}", err.panic().unwrap().backtrace().is_some());
        });
        return;
    }
    let run = |bt: Option<&str>| {
        let mut c = std::process::Command::new(std::env::current_exe().unwrap());
        c.args([
            "--exact",
            "probes18::the_report_has_a_backtrace_only_when_rust_backtrace_asks",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(crate::util::CHILD_ENV, NAME)
        .env_remove("RUST_LIB_BACKTRACE")
        .env_remove("RUST_BACKTRACE");
        if let Some(v) = bt {
            c.env("RUST_BACKTRACE", v);
        }
        c.output().unwrap()
    };
    let with = run(Some("1"));
    let (out, err) = (String::from_utf8_lossy(&with.stdout), stderr_of(&with));
    assert!(with.status.success(), "{err}");
    assert!(out.contains("HAS_BT=true"), "{out}");
    assert!(err.contains("greenlet 'bt' (#"), "{err}");
    assert!(err.contains("with bt?\nstack backtrace:\n"), "{err}");
    for without in [run(None), run(Some("0"))] {
        let (out, err) = (
            String::from_utf8_lossy(&without.stdout),
            stderr_of(&without),
        );
        assert!(without.status.success(), "{err}");
        assert!(out.contains("HAS_BT=false"), "{out}");
        assert!(err.contains("greenlet 'bt' (#"), "{err}");
        assert!(!err.contains("stack backtrace"), "{err}");
    }
}

// task.rs:607-609 `kill_timeout`: "Like [`kill`](Greenlet::kill), but
// waits at most `timeout`. Returns false if the greenlet is still alive
// then (it caught the unwind and went on)." A greenlet that does not catch
// the kill is dead even with a zero timeout: the kill is delivered when
// the caller parks.
#[test]
fn kill_timeout_zero_of_a_greenlet_that_does_not_resist() {
    bounded(|| {
        let g = spawn(|| sleep(LONG));
        yield_now();
        let dead = g.kill_timeout(Duration::ZERO);
        assert!(
            dead,
            "kill_timeout(0) gave false, yet the greenlet caught nothing"
        );
        assert!(g.is_dead());
    })
}

// task.rs:586-587 `wait`: "Waits until the greenlet is dead, at most
// `timeout` (forever when `None`). True when it is dead." With a zero
// timeout on a greenlet that finishes as soon as it runs.
#[test]
fn wait_zero_and_joinall_zero_on_greenlets_that_finish_at_once() {
    bounded(|| {
        let g = spawn(|| ());
        let _ = g.wait(Some(Duration::ZERO));
        let gs: Vec<_> = (0..3).map(|_| spawn(|| ())).collect();
        let all = joinall(&gs, Some(Duration::ZERO));
        // Whatever the answer, it must be true to the state.
        assert_eq!(all, gs.iter().all(|g| g.is_dead()));
        assert!(joinall(&gs, Some(LONG)));
        assert!(g.wait(Some(Duration::ZERO)), "dead: true at once");
    })
}

// queue.rs `Queue::bounded`: "A queue that holds at most `capacity`
// items", and queue_core.rs:723 `capacity`: "The bound, `None` when
// unbounded." A queue bounded at `usize::MAX` is bounded.
#[test]
fn a_queue_bounded_at_usize_max_reports_its_bound() {
    let q = sylvan::sync::Queue::<u8>::bounded(usize::MAX);
    assert_eq!(q.capacity(), Some(usize::MAX));
}

// task.rs:713-716 `link`: "Callbacks run in registration order (join
// waiters included), each in a fresh greenlet started one after another".
// A greenlet parked in `wait` between two callbacks runs between them.
#[test]
fn link_callbacks_and_waiters_run_in_registration_order() {
    bounded(|| {
        let log = crate::util::Log::default();
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let g = Rc::new(spawn(move || {
            e.wait();
        }));
        let l = log.clone();
        g.link(move |_| l.push("cb1"));
        let (g2, l) = (g.clone(), log.clone());
        let w = spawn(move || {
            assert!(g2.wait(None));
            l.push("waiter");
        });
        yield_now(); // g parks on the event, w in wait
        let l = log.clone();
        g.link(move |_| l.push("cb2"));
        ev.set();
        w.join().unwrap();
        yield_until("both callbacks ran", || log.get().len() == 3);
        assert_eq!(log.take(), ["cb1", "waiter", "cb2"]);
    })
}

// server.rs:258-259 `StreamServer::start`: "Starting a started server does
// nothing." server.rs:263 "# Errors: When the server was stopped".
// server.rs:343-344 `stop`: "A stopped server cannot be started again."
// server.rs:231-233 `with_pool`: "# Panics: When the server was already
// started or cloned." server.rs:336-339: the closing grace is one second.
#[test]
fn stream_server_start_twice_start_after_stop_and_with_pool_misuse() {
    bounded(|| {
        quiet();
        use sylvan::net::{StreamServer, TcpStream};
        let handler = |_c: TcpStream, _p: std::net::SocketAddr| {};
        let s = StreamServer::bind("127.0.0.1:0", handler)
            .unwrap()
            .start()
            .unwrap();
        let addr = s.local_addr().unwrap();
        let s = s.start().unwrap(); // again: nothing
        drop(TcpStream::connect(addr).unwrap());
        let p = catch_unwind(AssertUnwindSafe(|| {
            s.clone().with_pool(sylvan::pool::Pool::new(1))
        }))
        .unwrap_err();
        assert!(message(&*p).contains("with_pool"), "{}", message(&*p));
        s.stop(Some(Duration::from_secs(1)));
        let e = s.clone().start().unwrap_err();
        assert!(e.to_string().contains("stopped"), "{e}");
        s.stop(None); // again: cheap and safe
        assert_eq!(
            crate::util::first_error(|| TcpStream::connect(addr)).kind(),
            std::io::ErrorKind::ConnectionRefused
        );

        let started = StreamServer::bind("127.0.0.1:0", handler)
            .unwrap()
            .start()
            .unwrap();
        let p = catch_unwind(AssertUnwindSafe(|| {
            started.with_pool(sylvan::pool::Pool::new(1))
        }))
        .unwrap_err();
        assert!(message(&*p).contains("after start"), "{}", message(&*p));

        // Stopped before it ever started: its listener is closed.
        let never = StreamServer::bind("127.0.0.1:0", handler).unwrap();
        let addr = never.local_addr().unwrap();
        never.stop(Some(Duration::ZERO));
        assert!(never.clone().start().is_err());
        assert_eq!(
            crate::util::first_error(|| TcpStream::connect(addr)).kind(),
            std::io::ErrorKind::ConnectionRefused
        );
        assert_eq!(StreamServer::STOP_TIMEOUT, Duration::from_secs(1));
    })
}

// mpsc.rs:243-244 `Receiver::recv_timeout`: "[`RecvTimeoutError::Timeout`]
// when nothing arrived in time, [`RecvTimeoutError::Disconnected`] when
// every sender is gone." Called from a destructor with a sender alive and
// nothing queued, it cannot wait (sync/mod.rs:22-25: waits "report 'not
// ready'"), so nothing arrived: `Timeout`. Same for the oneshot
// (mpsc.rs:391 "As [`Receiver::recv_timeout`]").
#[test]
fn recv_timeout_in_a_destructor_with_a_live_sender_is_a_timeout() {
    bounded(|| {
        use std::sync::mpsc::RecvTimeoutError;
        let (tx, rx) = sylvan::mpsc::channel::<u8>();
        let (otx, orx) = sylvan::mpsc::oneshot::<u8>();
        let out = Rc::new(RefCell::new(Vec::new()));
        struct R(
            sylvan::mpsc::Receiver<u8>,
            sylvan::mpsc::OneshotReceiver<u8>,
            Rc<RefCell<Vec<Result<u8, RecvTimeoutError>>>>,
        );
        impl Drop for R {
            fn drop(&mut self) {
                let a = self.0.recv_timeout(Duration::from_secs(2));
                let b = self.1.recv_timeout(Duration::from_secs(2));
                self.2.borrow_mut().extend([a, b]);
            }
        }
        let r = R(rx, orx, out.clone());
        let g = spawn(move || {
            let _r = r;
            sleep(LONG);
        });
        yield_now();
        g.kill();
        assert_eq!(
            *out.borrow(),
            [
                Err(RecvTimeoutError::Timeout),
                Err(RecvTimeoutError::Timeout)
            ],
            "both senders are alive"
        );
        drop((tx, otx));
    })
}

// net/mod.rs:58-61 "**Unwinding.** An operation that would have to park
// while its greenlet is unwinding (a destructor running during a kill or
// panic) does not switch: it fails at once with an
// [`io::ErrorKind::Other`] error saying so. Operations that can complete
// at once still do."
#[test]
fn socket_operations_in_a_destructor_complete_or_fail_at_once_with_other() {
    bounded(|| {
        use std::io::{Read, Write};
        use sylvan::net::{TcpListener, TcpStream, UdpSocket, UnixStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).unwrap();
        let (server_side, _) = listener.accept().unwrap();
        server_side
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (ua, ub) = UnixStream::pair().unwrap();
        struct Ops {
            listener: TcpListener,
            server_side: TcpStream,
            client: TcpStream,
            udp: UdpSocket,
            ua: UnixStream,
            ub: UnixStream,
            out: Rc<RefCell<Vec<String>>>,
        }
        fn show<T>(r: std::io::Result<T>) -> String {
            match r {
                Ok(_) => "ok".to_owned(),
                Err(e) if e.kind() == std::io::ErrorKind::Other => {
                    assert!(e.to_string().contains("unwinding"), "{e}");
                    "other".to_owned()
                }
                Err(e) => format!("{:?}: {e}", e.kind()),
            }
        }
        impl Drop for Ops {
            fn drop(&mut self) {
                let ran = Rc::new(Cell::new(false));
                let r = ran.clone();
                drop(spawn(move || r.set(true)));
                let t0 = Instant::now();
                let mut o = self.out.borrow_mut();
                let mut buf = [0u8; 8];
                // Nothing to read, nobody to accept: would park.
                o.push(show((&self.server_side).read(&mut buf)));
                o.push(show(self.listener.accept()));
                o.push(show(self.udp.recv_from(&mut buf)));
                o.push(show((&self.ua).read(&mut buf)));
                // Can complete at once.
                o.push(show((&self.client).write(b"abc")));
                o.push(show((&self.ub).write(b"xyz")));
                let me = self.udp.local_addr().unwrap();
                o.push(show(self.udp.send_to(b"u", me)));
                // Data is there now: the reads complete (loopback delivers
                // synchronously; give the kernel a bounded number of tries).
                let mut tries = 0;
                let got = loop {
                    match (&self.server_side).read(&mut buf) {
                        Err(e) if e.kind() == std::io::ErrorKind::Other && tries < 1000 => {
                            tries += 1;
                            std::thread::yield_now();
                        }
                        r => break r,
                    }
                };
                o.push(format!("{:?}", got.map(|n| buf[..n].to_vec())));
                o.push(show((&self.ua).read(&mut buf)));
                o.push(show(self.udp.recv_from(&mut buf)));
                o.push(format!("switched={}", ran.get()));
                o.push(format!("quick={}", t0.elapsed() < Duration::from_secs(1)));
            }
        }
        let out = Rc::new(RefCell::new(Vec::new()));
        let ops = Ops {
            listener,
            server_side,
            client,
            udp,
            ua,
            ub,
            out: out.clone(),
        };
        let g = spawn(move || {
            let _ops = ops;
            sleep(LONG);
        });
        yield_now();
        g.kill();
        assert_eq!(
            *out.borrow(),
            [
                "other",
                "other",
                "other",
                "other",
                "ok",
                "ok",
                "ok",
                "Ok([97, 98, 99])",
                "ok",
                "ok",
                "switched=false",
                "quick=true"
            ]
        );
    })
}

// lib.rs:76-79 `set_stack_pool_limit`: "stacks returned past the bound are
// unmapped, and lowering it unmaps the excess at once." lib.rs:84-85
// `trim_stack_pool`: "Gives back the memory of the pooled free stacks
// without unmapping them". Run on a fresh thread: a hub of its own.
#[test]
fn lowering_the_pool_limit_unmaps_at_once_and_trimming_unmaps_nothing() {
    std::thread::spawn(|| {
        bounded(|| {
            sylvan::set_stack_pool_limit(16);
            let gs: Vec<_> = (0..20).map(|_| spawn(|| sleep(MS))).collect();
            assert!(joinall(&gs, None));
            drop(gs);
            let full = sylvan::stats();
            assert_eq!(full.stacks_pooled, 16);
            sylvan::trim_stack_pool();
            let trimmed = sylvan::stats();
            assert_eq!(trimmed.stacks_pooled, 16, "trim keeps the stacks pooled");
            assert_eq!(trimmed.stacks_unmapped, full.stacks_unmapped);
            sylvan::set_stack_pool_limit(4);
            let lowered = sylvan::stats();
            assert_eq!(lowered.stacks_pooled, 4, "the excess goes at once");
            assert_eq!(lowered.stacks_unmapped, full.stacks_unmapped + 12);
            // Trimmed and surviving stacks still serve spawns.
            let v: Vec<u32> = (0..4u32)
                .map(|i| {
                    spawn(move || {
                        let buf = std::hint::black_box([i as u8; 4096]);
                        u32::from(buf[4095])
                    })
                })
                .map(|g| g.join().unwrap())
                .collect();
            assert_eq!(v, [0, 1, 2, 3]);
            assert_eq!(sylvan::stats().stacks_mapped, lowered.stacks_mapped);
            sylvan::set_stack_pool_limit(0);
            assert_eq!(sylvan::stats().stacks_pooled, 0);
            spawn(|| ()).join().unwrap();
            assert_eq!(sylvan::stats().stacks_pooled, 0, "limit 0 keeps none");
        })
    })
    .join()
    .unwrap();
}

// error.rs:152-154 `ErrorPolicy::Custom`: "Hand each failure to this
// function. A panic inside it is caught and printed". Nothing says the
// function runs on the hub itself, where blocking is forbidden: a policy
// that forwards failures with an ordinary blocking call (here a short
// sleep, as a rate limit would) panics there. The doc now says so ("It
// runs on the hub itself, so it must not block"): this test pins that the
// panic is caught, printed, and harms nothing.
#[test]
fn a_custom_policy_that_blocks_panics_and_is_caught() {
    const NAME: &str = "p18_policy_blocks";
    if is_child(NAME) {
        bounded(|| {
            let seen = Rc::new(RefCell::new(Vec::<String>::new()));
            let s = seen.clone();
            sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |f| {
                s.borrow_mut().push(format!("start {}", f.id));
                sleep(MS);
                s.borrow_mut().push(format!("end {}", f.id));
            })));
            let g = spawn(|| panic!("x"));
            let id = g.id();
            let _ = g.join();
            yield_until("the policy ran", || !seen.borrow().is_empty());
            sleep(MS);
            assert_eq!(
                *seen.borrow(),
                [format!("start {id}")],
                "its sleep panicked"
            );
            assert_eq!(spawn(|| 5).join().unwrap(), 5, "the hub goes on");
            println!("CHILD OK");
        });
        return;
    }
    let out = run_child(
        "probes18::a_custom_policy_that_blocks_panics_and_is_caught",
        NAME,
    );
    let err = stderr_of(&out);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("CHILD OK"),
        "{err}"
    );
    assert!(err.contains("custom error policy panicked"), "{err}");
}

// task.rs:271-272 `Greenlet`: "dropping it detaches the greenlet (it runs
// on)". The value a detached greenlet returns is dropped by sylvan; a
// destructor that blocks (here a short sleep) must not take the hub down.
#[test]
fn a_detached_greenlets_value_may_block_in_its_destructor() {
    const NAME: &str = "p18_detached_value_blocks";
    if is_child(NAME) {
        bounded(|| {
            let done = Rc::new(Cell::new(0u32));
            struct Slow(Rc<Cell<u32>>);
            impl Drop for Slow {
                fn drop(&mut self) {
                    sleep(MS);
                    self.0.set(self.0.get() + 1);
                }
            }
            let d = done.clone();
            drop(spawn(move || Slow(d)));
            let d = done.clone();
            let g = spawn(move || Slow(d));
            yield_now();
            drop(g); // dead already: dropped here, by main
            yield_until("both values dropped", || done.get() == 2);
            let after = spawn(|| 5).join().unwrap();
            assert_eq!(after, 5, "the hub goes on");
            println!("CHILD OK");
        });
        return;
    }
    let out = run_child(
        "probes18::a_detached_greenlets_value_may_block_in_its_destructor",
        NAME,
    );
    let err = stderr_of(&out);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("CHILD OK"),
        "{:?}\n{err}",
        out.status
    );
}

// task.rs:835-842 `current`: "The id of the running greenlet (`#0` for
// main)"; `current_name`: "The name of the running greenlet (`"main"` for
// main)". Inside a custom error policy (which runs on the hub), both
// answer without panicking, and the policy may spawn a greenlet for work
// that blocks (as the hub's "spawn a greenlet for it instead" advises).
#[test]
fn current_and_spawn_work_inside_a_custom_policy() {
    bounded(|| {
        let seen = Rc::new(RefCell::new(Vec::<String>::new()));
        let s = seen.clone();
        sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |f| {
            let r = catch_unwind(AssertUnwindSafe(|| {
                (sylvan::current(), sylvan::current_name())
            }));
            s.borrow_mut().push(format!("current ok={}", r.is_ok()));
            let (s2, id) = (s.clone(), f.id);
            drop(spawn(move || {
                sleep(MS);
                s2.borrow_mut().push(format!("forwarded {id}"));
            }));
        })));
        let g = spawn(|| panic!("y"));
        let id = g.id();
        let _ = g.join();
        yield_until("forwarded", || seen.borrow().len() == 2);
        assert_eq!(
            *seen.borrow(),
            ["current ok=true".to_owned(), format!("forwarded {id}")]
        );
        sylvan::set_error_policy(ErrorPolicy::Report);
    })
}

// task.rs:383-384 `spawn`: "greenlets start in the order they were
// spawned", whatever their stack (a custom size maps its stack at the
// spawn, the default takes one when it first runs); task.rs:655 `is_started`:
// "True once its body has begun running" - not before, for either kind.
#[test]
fn start_order_and_is_started_hold_across_stack_kinds() {
    bounded(|| {
        let log = crate::util::Log::default();
        let gs: Vec<_> = (0..8)
            .map(|i| {
                let l = log.clone();
                let body = move || l.push(i.to_string());
                match i % 3 {
                    0 => spawn(body),
                    1 => Builder::new().stack_size(64 << 10).spawn(body).unwrap(),
                    _ => Builder::new().name("n").spawn(body).unwrap(),
                }
            })
            .collect();
        assert!(gs.iter().all(|g| !g.is_started()), "none began yet");
        yield_now();
        assert_eq!(log.take(), ["0", "1", "2", "3", "4", "5", "6", "7"]);
        assert!(gs.iter().all(|g| g.is_started() && g.is_dead()));
    })
}

// wait.rs:174-175 `wait`: "Called while the greenlet unwinds, it does not
// wait: it returns the objects ready already." (in index order, and
// leaving no registration behind).
#[test]
fn wait_in_a_destructor_returns_the_ready_objects_at_once() {
    bounded(|| {
        let dead = Rc::new(spawn(|| ()));
        let live = Rc::new(spawn(|| sleep(LONG)));
        let set = Rc::new(Event::new());
        set.set();
        let unset = Rc::new(Event::new());
        yield_now();
        type Seen = Rc<RefCell<Option<(Vec<usize>, Vec<usize>, bool)>>>;
        let out: Seen = Rc::new(RefCell::new(None));
        struct W(
            Rc<sylvan::Greenlet<()>>,
            Rc<sylvan::Greenlet<()>>,
            Rc<Event>,
            Rc<Event>,
            Seen,
        );
        impl Drop for W {
            fn drop(&mut self) {
                let t0 = Instant::now();
                let objs: [&dyn sylvan::Waitable; 4] = [&*self.0, &*self.1, &*self.2, &*self.3];
                let all = sylvan::wait(&objs, Some(Duration::from_secs(2)), None);
                let it: Vec<usize> = sylvan::iwait(&objs, None).collect();
                *self.4.borrow_mut() = Some((all, it, t0.elapsed() < Duration::from_secs(1)));
            }
        }
        let w = W(
            dead.clone(),
            live.clone(),
            set.clone(),
            unset.clone(),
            out.clone(),
        );
        let g = spawn(move || {
            let _w = w;
            sleep(LONG);
        });
        yield_now();
        g.kill();
        assert_eq!(
            out.borrow_mut().take(),
            Some((vec![0, 2], vec![0, 2], true))
        );
        assert_eq!(unset.waiters(), 0, "no registration left behind");
        live.kill();
    })
}
