//! Probe round 52: a hostile review of two small fixes.
//!
//! * `iwait`'s re-watch after a spurious wake-up (`w..`, f69b38f): a
//!   `Waitable` that wakes its watchers without being ready is unwatched
//!   and watched again; a panic in that watch now clears the slot,
//!   unregisters everything and resumes the panic. Probed with a counting
//!   `Waitable` (every token watched is unwatched exactly once, nothing is
//!   left registered): repeated spurious wake-ups, a panic on a later
//!   re-watch, reuse of the iterator after the panic with other objects
//!   ready meanwhile, `wait` with a count, a re-watch that notifies
//!   synchronously from inside `watch` (the object became ready) or that
//!   blocks while another object becomes ready, kills and timeouts inside
//!   a blocking re-watch, and other greenlets waiting on the same built-in
//!   `Event`, `AsyncResult` or `Greenlet` behind a wrapper whose re-watch
//!   panics.
//! * `wait_all` with only signal handlers left (`g..`, 63e54b3, each in a
//!   child process: dispositions are process-wide, and not under
//!   `util::bounded`, whose `Timeout` would be work): it now polls once
//!   more, so a signal already delivered is handled before it returns. A
//!   handler that raises its own signal again (must not keep `wait_all`
//!   from returning, with or without a timeout), handlers that sleep or
//!   spawn (waited for), several signals pending, a chain (one handler
//!   raising another signal), and main parked on an event with only a
//!   handler alive (waits, bounded by `with_timeout`).
//!
//! Four tests found bugs, fixed since: `w05` and `w07` (a notice that arrives during
//! the re-watch, from inside `watch` or while it blocks, is queued while
//! no greenlet is parked in the iterator and is seen only at the
//! deadline), `g01` and `g02` (a handler that raises its own signal again
//! keeps `wait_all` from returning: every turn with only handlers left
//! polls once more and finds the next run).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::{Duration, Instant};

use sylvan::sync::{AsyncResult, Event};
use sylvan::{Waitable, Waiter};

use crate::util::{bounded, is_child, run_child_limited, texts, yield_until};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---------------------------------------------------------------- w: iwait's re-watch after a spurious wake-up

#[derive(Debug, PartialEq)]
struct Boom(u32);

fn boom(p: Box<dyn std::any::Any + Send>) -> u32 {
    p.downcast::<Boom>().expect("the watch's own payload").0
}

/// A counting `Waitable`: every `watch` gets a fresh token, an `unwatch`
/// of a token not held (twice, or never given) is counted as bad. Its
/// n-th `watch` can panic, sleep, or become ready and wake synchronously.
#[derive(Default)]
struct Reg {
    ready: Cell<bool>,
    next_token: Cell<usize>,
    live: RefCell<HashMap<usize, Waiter>>,
    watches: Cell<u32>,
    unwatches: Cell<u32>,
    bad_unwatches: Cell<u32>,
    panic_on: Cell<Option<u32>>,
    /// On this watch: sleeps this long before registering.
    sleep_on: Cell<Option<(u32, Duration)>>,
    /// On this watch: becomes ready and wakes the new waiter at once.
    ready_on: Cell<Option<u32>>,
}

impl Reg {
    fn panicking_on(n: u32) -> Rc<Reg> {
        let r = Reg::default();
        r.panic_on.set(Some(n));
        Rc::new(r)
    }
    fn waiters(&self) -> Vec<Waiter> {
        self.live.borrow().values().copied().collect()
    }
    fn raise(&self) {
        self.ready.set(true);
        for w in self.waiters() {
            w.wake();
        }
    }
    fn spurious(&self) {
        for w in self.waiters() {
            w.wake();
        }
    }
    fn live(&self) -> usize {
        self.live.borrow().len()
    }
}

impl Waitable for Reg {
    fn is_ready(&self) -> bool {
        self.ready.get()
    }
    fn watch(&self, w: Waiter) -> usize {
        let k = self.watches.get() + 1;
        self.watches.set(k);
        if self.panic_on.get() == Some(k) {
            std::panic::panic_any(Boom(k));
        }
        if let Some((n, d)) = self.sleep_on.get()
            && n == k
        {
            sylvan::sleep(d);
        }
        let t = self.next_token.get();
        self.next_token.set(t + 1);
        self.live.borrow_mut().insert(t, w);
        if self.ready_on.get() == Some(k) {
            self.ready.set(true);
            w.wake();
        }
        t
    }
    fn unwatch(&self, w: Waiter, token: usize) {
        self.unwatches.set(self.unwatches.get() + 1);
        if self.live.borrow_mut().remove(&token) != Some(w) {
            self.bad_unwatches.set(self.bad_unwatches.get() + 1);
        }
    }
}

/// Nothing registered, nothing unwatched twice, and every successful
/// watch unwatched exactly once (`panicked` watches never gave a token).
fn clean(regs: &[(&Reg, u32)]) {
    for (i, (r, panicked)) in regs.iter().enumerate() {
        assert_eq!(r.live(), 0, "object {i} still registered");
        assert_eq!(r.bad_unwatches.get(), 0, "object {i}: bad unwatch");
        assert_eq!(
            r.watches.get() - panicked,
            r.unwatches.get(),
            "object {i}: watches (less {panicked} panicked) vs unwatches"
        );
    }
}

/// Spurious wake-ups, each from its own greenlet: the iterator stays
/// parked with exactly one live registration, and reports the object
/// once it is ready.
#[test]
fn w01_repeated_spurious_wakeups_rewatch_once_each() {
    bounded(|| {
        let r = Rc::new(Reg::default());
        let objs: [&dyn Waitable; 1] = [&*r];
        let mut it = sylvan::iwait(&objs, Some(Duration::from_secs(3)));
        let r2 = r.clone();
        let g = sylvan::spawn(move || {
            for k in 0..10 {
                yield_until("registered", || r2.live() == 1 && r2.watches.get() == k + 1);
                r2.spurious();
            }
            yield_until("re-watched", || r2.watches.get() == 11);
            r2.raise();
        });
        let t = Instant::now();
        assert_eq!(it.next(), Some(0));
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        g.join().unwrap();
        assert_eq!(it.next(), None);
        drop(it);
        assert_eq!(r.watches.get(), 11);
        clean(&[(&r, 0)]);
    });
}

/// Several spurious wake-ups, the fifth re-watch panics: the payload comes
/// back, nothing is left registered on either object, and the iterator
/// used again registers anew and reports both as they become ready.
#[test]
fn w02_a_panic_on_a_later_rewatch_then_reuse_sees_everything() {
    bounded(|| {
        let a = Reg::panicking_on(5);
        let b = Rc::new(Reg::default());
        let objs: [&dyn Waitable; 2] = [&*a, &*b];
        let mut it = sylvan::iwait(&objs, Some(Duration::from_secs(3)));
        let a2 = a.clone();
        let g = sylvan::spawn(move || {
            for k in 1..=4 {
                yield_until("registered", || a2.watches.get() == k && a2.live() == 1);
                a2.spurious();
            }
        });
        let p = catch_unwind(AssertUnwindSafe(|| it.next())).unwrap_err();
        assert_eq!(boom(p), 5);
        g.join().unwrap();
        assert_eq!((a.live(), b.live()), (0, 0), "all undone at the panic");
        clean(&[(&a, 1), (&b, 0)]);
        let (a3, b3) = (a.clone(), b.clone());
        let g = sylvan::spawn(move || {
            b3.raise();
            sylvan::sleep(ms(5));
            a3.raise();
        });
        assert_eq!(it.next(), Some(1));
        assert_eq!(it.next(), Some(0));
        assert_eq!(it.next(), None);
        g.join().unwrap();
        drop(it);
        clean(&[(&a, 1), (&b, 0)]);
    });
}

/// Both objects notified in one turn: the first spuriously (its re-watch
/// panics), the second really (an `Event` that stays set). The panic
/// drops the second's notice with the registrations; the reused iterator
/// finds it by its scan. The `Event` keeps no waiter.
#[test]
fn w03_a_panic_with_another_notice_pending_loses_no_item() {
    bounded(|| {
        let a = Reg::panicking_on(2);
        let ev = Rc::new(Event::new());
        let objs: [&dyn Waitable; 2] = [&*a, &*ev];
        let mut it = sylvan::iwait(&objs, Some(Duration::from_secs(3)));
        let (a2, e2) = (a.clone(), ev.clone());
        let g = sylvan::spawn(move || {
            a2.spurious();
            e2.set();
        });
        let p = catch_unwind(AssertUnwindSafe(|| it.next())).unwrap_err();
        assert_eq!(boom(p), 2);
        g.join().unwrap();
        assert_eq!(ev.waiters(), 0);
        assert_eq!(it.next(), Some(1));
        let a3 = a.clone();
        let g = sylvan::spawn(move || a3.raise());
        assert_eq!(it.next(), Some(0));
        g.join().unwrap();
        drop(it);
        assert_eq!(ev.waiters(), 0);
        clean(&[(&a, 1)]);
    });
}

/// `wait` with a count: one object is ready first and taken, then the
/// other's re-watch panics; the panic reaches the caller, and nothing is
/// left registered (the `Event` already reported keeps no waiter). With a
/// count of 1 and the ready object behind the panicking one, `wait`
/// returns the ready one: the spurious object is never re-watched.
#[test]
fn w04_wait_with_a_count_and_a_panicking_rewatch() {
    bounded(|| {
        let a = Reg::panicking_on(2);
        let ev = Rc::new(Event::new());
        let objs: [&dyn Waitable; 2] = [&*ev, &*a];
        let (a2, e2) = (a.clone(), ev.clone());
        let g = sylvan::spawn(move || {
            e2.set();
            yield_until("the event taken", || e2.waiters() == 0);
            sylvan::sleep(ms(5));
            a2.spurious();
        });
        let p = catch_unwind(AssertUnwindSafe(|| {
            sylvan::wait(&objs, Some(Duration::from_secs(3)), Some(2))
        }))
        .unwrap_err();
        assert_eq!(boom(p), 2);
        g.join().unwrap();
        assert_eq!(ev.waiters(), 0);
        clean(&[(&a, 1)]);

        // count 1: the real notice (index 1) is taken after the spurious
        // one (index 0) has been re-watched; here the re-watch succeeds
        let a = Rc::new(Reg::default());
        let ev = Rc::new(Event::new());
        let objs: [&dyn Waitable; 2] = [&*a, &*ev];
        let (a2, e2) = (a.clone(), ev.clone());
        let g = sylvan::spawn(move || {
            a2.spurious();
            e2.set();
        });
        let got = sylvan::wait(&objs, Some(Duration::from_secs(3)), Some(1));
        assert_eq!(got, [1]);
        g.join().unwrap();
        assert_eq!(ev.waiters(), 0);
        clean(&[(&a, 0)]);
    });
}

/// A re-watch (after a spurious wake-up) that finds the object ready and
/// wakes the new waiter synchronously, from inside `watch`, as an
/// implementation that checks readiness at registration does. `next`
/// should report it at once; `register`'s watches get the same treatment
/// (`next` checks the notices again before parking).
#[test]
fn w05_a_rewatch_that_notifies_synchronously_is_reported_at_once() {
    bounded(|| {
        let r = Rc::new(Reg::default());
        r.ready_on.set(Some(2));
        let objs: [&dyn Waitable; 1] = [&*r];
        let mut it = sylvan::iwait(&objs, Some(Duration::from_secs(2)));
        let r2 = r.clone();
        let g = sylvan::spawn(move || r2.spurious());
        let t = Instant::now();
        let got = it.next();
        let took = t.elapsed();
        g.join().unwrap();
        drop(it);
        clean(&[(&r, 0)]);
        assert_eq!(
            (got, took < Duration::from_secs(1)),
            (Some(0), true),
            "reported after {took:?}"
        );
    });
}

/// Control for `w05`: the synchronous wake-up from the first watch (in
/// `register`) is seen at once.
#[test]
fn w06_control_a_first_watch_that_notifies_synchronously() {
    bounded(|| {
        let r = Rc::new(Reg::default());
        r.ready_on.set(Some(1));
        let objs: [&dyn Waitable; 1] = [&*r];
        let t = Instant::now();
        assert_eq!(sylvan::wait(&objs, Some(Duration::from_secs(2)), None), [0]);
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        clean(&[(&r, 0)]);
    });
}

/// A re-watch that blocks (sleeps) while another object of the same
/// iterator becomes ready: that object's notice arrives while no greenlet
/// is parked in the iterator, and must still be reported when the
/// re-watch returns, not at the deadline.
#[test]
fn w07_a_notice_during_a_blocking_rewatch_is_not_lost() {
    bounded(|| {
        let a = Rc::new(Reg::default());
        a.sleep_on.set(Some((2, ms(30))));
        let ev = Rc::new(Event::new());
        let objs: [&dyn Waitable; 2] = [&*a, &*ev];
        let mut it = sylvan::iwait(&objs, Some(Duration::from_secs(2)));
        let (a2, e2) = (a.clone(), ev.clone());
        let g = sylvan::spawn(move || {
            a2.spurious();
            yield_until("the re-watch sleeps", || a2.watches.get() == 2);
            e2.set();
        });
        let t = Instant::now();
        let got = it.next();
        let took = t.elapsed();
        g.join().unwrap();
        drop(it);
        clean(&[(&a, 0)]);
        assert_eq!(ev.waiters(), 0);
        assert_eq!(
            (got, took < Duration::from_secs(1)),
            (Some(1), true),
            "reported after {took:?}"
        );
    });
}

/// A kill landing in a blocking re-watch stays a kill, and a timeout
/// expiring there stays the caller's timeout; nothing is left registered
/// and no token is unwatched twice.
#[test]
fn w08_kill_and_timeout_inside_a_blocking_rewatch() {
    bounded(|| {
        let (a, b) = (Rc::new(Reg::default()), Rc::new(Reg::default()));
        a.sleep_on.set(Some((2, Duration::from_secs(3600))));
        let seen = Rc::new(Cell::new(false));
        let (a2, b2, s) = (a.clone(), b.clone(), seen.clone());
        let g = sylvan::spawn(move || {
            let objs: [&dyn Waitable; 2] = [&*a2, &*b2];
            let mut it = sylvan::iwait(&objs, None);
            let p = catch_unwind(AssertUnwindSafe(|| it.next())).unwrap_err();
            s.set(p.is::<sylvan::GreenletExit>());
            drop(it);
            std::panic::resume_unwind(p);
        });
        yield_until("registered", || a.live() == 1);
        a.spurious();
        yield_until("the re-watch blocks", || a.watches.get() == 2);
        g.kill();
        assert!(g.join().unwrap_err().is_killed());
        assert!(seen.get(), "a GreenletExit came out of next");
        clean(&[(&a, 1), (&b, 0)]); // the blocked watch gave no token

        let (a, b) = (Rc::new(Reg::default()), Rc::new(Reg::default()));
        a.sleep_on.set(Some((2, Duration::from_secs(3600))));
        let a2 = a.clone();
        let g = sylvan::spawn(move || {
            yield_until("registered", || a2.live() == 1);
            a2.spurious();
        });
        let objs: [&dyn Waitable; 2] = [&*a, &*b];
        let r = sylvan::with_timeout(ms(50), || {
            let mut it = sylvan::iwait(&objs, None);
            it.next()
        });
        assert!(r.is_err(), "the caller's own timeout: {r:?}");
        g.join().unwrap();
        clean(&[(&a, 1), (&b, 0)]);
    });
}

/// A wrapper around a built-in `Waitable` whose second `watch` (the
/// re-watch after a spurious wake-up) panics; it keeps its last waiter
/// so a test can wake it spuriously, and counts watches and unwatches.
struct Wrap<W> {
    inner: W,
    watches: Cell<u32>,
    unwatches: Cell<u32>,
    last: Cell<Option<Waiter>>,
}

impl<W> Wrap<W> {
    fn new(inner: W) -> Rc<Self> {
        Rc::new(Wrap {
            inner,
            watches: Cell::new(0),
            unwatches: Cell::new(0),
            last: Cell::new(None),
        })
    }
}

impl<W: Waitable> Waitable for Wrap<W> {
    fn is_ready(&self) -> bool {
        self.inner.is_ready()
    }
    fn watch(&self, w: Waiter) -> usize {
        self.watches.set(self.watches.get() + 1);
        if self.watches.get() == 2 {
            std::panic::panic_any(Boom(2));
        }
        self.last.set(Some(w));
        self.inner.watch(w)
    }
    fn unwatch(&self, w: Waiter, token: usize) {
        self.unwatches.set(self.unwatches.get() + 1);
        self.inner.unwatch(w, token)
    }
    fn fired(&self, w: Waiter, token: usize) -> bool {
        self.inner.fired(w, token)
    }
}

/// Makes the re-watch of `wrap` (the only one of `objs`) panic: a
/// spurious wake-up from another greenlet, then the panic out of `next`.
/// Returns the iterator, for reuse or drop.
fn panic_in_rewatch<'a, W: Waitable + 'static>(
    wrap: &Rc<Wrap<W>>,
    objs: &'a [&'a dyn Waitable],
) -> sylvan::Iwait<'a> {
    let mut it = sylvan::iwait(objs, Some(Duration::from_secs(3)));
    let w2 = wrap.clone();
    let waker = sylvan::spawn(move || w2.last.get().unwrap().wake());
    let p = catch_unwind(AssertUnwindSafe(|| it.next())).unwrap_err();
    assert_eq!(boom(p), 2);
    waker.join().unwrap();
    assert_eq!(wrap.unwatches.get(), 1, "the first token unwatched once");
    it
}

/// Other greenlets parked on the same `Event` (a plain wait, and another
/// `iwait`) before and after the panic: the iterator's reuse and drop
/// take none of their places; `set` wakes them all, and the reused
/// iterator reports the event too.
#[test]
fn w09_other_waiters_on_the_same_event_are_untouched() {
    bounded(|| {
        let wrap = Wrap::new(Event::new());
        let w = wrap.clone();
        let before = sylvan::spawn(move || w.inner.wait_timeout(Duration::from_secs(2)));
        let w = wrap.clone();
        let other_iwait = sylvan::spawn(move || {
            let objs: [&dyn Waitable; 1] = [&w.inner];
            sylvan::wait(&objs, Some(Duration::from_secs(2)), None)
        });
        sylvan::yield_now();
        assert_eq!(wrap.inner.waiters(), 2);
        let objs: [&dyn Waitable; 1] = [&*wrap];
        let mut it = panic_in_rewatch(&wrap, &objs);
        assert_eq!(
            wrap.inner.waiters(),
            2,
            "only the iterator's own place went"
        );
        let w = wrap.clone();
        let after = sylvan::spawn(move || w.inner.wait_timeout(Duration::from_secs(2)));
        sylvan::yield_now();
        assert_eq!(wrap.inner.waiters(), 3);
        let w = wrap.clone();
        let setter = sylvan::spawn(move || {
            yield_until("the iterator registered again", || w.inner.waiters() == 4);
            w.inner.set();
        });
        assert_eq!(it.next(), Some(0));
        drop(it);
        setter.join().unwrap();
        assert!(before.join().unwrap());
        assert!(after.join().unwrap());
        assert_eq!(other_iwait.join().unwrap(), [0]);
        assert_eq!(wrap.inner.waiters(), 0);
        assert_eq!(wrap.watches.get() - 1, wrap.unwatches.get());
    });
}

/// The same with an `AsyncResult`: the iterator dropped right after the
/// panic (its drop unwatches nothing more), then the value reaches every
/// other waiter.
#[test]
fn w10_other_waiters_on_the_same_async_result_are_untouched() {
    bounded(|| {
        let wrap = Wrap::new(AsyncResult::<u32, ()>::new());
        let w = wrap.clone();
        let before = sylvan::spawn(move || w.inner.wait());
        sylvan::yield_now();
        assert_eq!(wrap.inner.waiters(), 1);
        let objs: [&dyn Waitable; 1] = [&*wrap];
        let it = panic_in_rewatch(&wrap, &objs);
        let w = wrap.clone();
        let after = sylvan::spawn(move || w.inner.wait());
        sylvan::yield_now();
        assert_eq!(wrap.inner.waiters(), 2);
        drop(it);
        assert_eq!(wrap.inner.waiters(), 2, "the drop took another's place");
        assert_eq!(wrap.unwatches.get(), 1);
        wrap.inner.set(7).unwrap();
        assert!(before.join().unwrap());
        assert!(after.join().unwrap());
        assert_eq!(wrap.inner.get(), Ok(7));
        assert_eq!(wrap.inner.waiters(), 0);
    });
}

/// The same with a `Greenlet`: joiners parked before and after the panic
/// all see its end; the reused iterator reports it.
#[test]
fn w11_other_joiners_of_the_same_greenlet_are_untouched() {
    bounded(|| {
        let go = Rc::new(Event::new());
        let g2 = go.clone();
        let target = sylvan::spawn(move || {
            g2.wait();
            5u32
        });
        let wrap = Wrap::new(target);
        let w = wrap.clone();
        let before = sylvan::spawn(move || {
            let objs: [&dyn Waitable; 1] = [&w.inner];
            sylvan::wait(&objs, Some(Duration::from_secs(2)), None)
        });
        sylvan::yield_now();
        let objs: [&dyn Waitable; 1] = [&*wrap];
        let mut it = panic_in_rewatch(&wrap, &objs);
        let w = wrap.clone();
        let after = sylvan::spawn(move || {
            let objs: [&dyn Waitable; 1] = [&w.inner];
            sylvan::wait(&objs, Some(Duration::from_secs(2)), None)
        });
        sylvan::yield_now();
        go.set();
        let t = Instant::now();
        assert_eq!(it.next(), Some(0));
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        drop(it);
        assert_eq!(before.join().unwrap(), [0]);
        assert_eq!(after.join().unwrap(), [0]);
        assert_eq!(wrap.watches.get() - 1, wrap.unwatches.get());
    });
}

// ---------------------------------------------------------------- g: wait_all with only signal handlers left

/// Runs `body` in a re-executed child process, not under `bounded` (its
/// `Timeout` would be work): the child is killed after 20 s instead.
fn child(path: &str, name: &str, body: impl FnOnce()) {
    if is_child(name) {
        body();
        println!("PROBE ok");
        return;
    }
    let out = run_child_limited(path, name, &[], Duration::from_secs(20))
        .unwrap_or_else(|| panic!("child {name} hung"));
    let (stdout, stderr) = texts(&out);
    assert!(
        out.status.success() && stdout.contains("PROBE ok"),
        "child {name} failed ({:?})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
}

/// Sends `sig` to this thread: delivered before this returns.
fn raise_here(sig: i32) {
    // SAFETY: a thread-directed signal to this thread, which handles it.
    unsafe { libc::pthread_kill(libc::pthread_self(), sig) };
}

fn counting(sig: i32) -> (Rc<Cell<u32>>, sylvan::SignalHandler) {
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    let h = sylvan::signal(sig, move || r.set(r.get() + 1)).unwrap();
    (runs, h)
}

const LONG: Duration = Duration::from_secs(5);
/// Where a self-raising handler stops raising, so a child that loops
/// still ends.
const CAP: u32 = 2000;

/// A handler that raises its own signal again each time it runs (up to
/// `CAP` times): the signal pending when `wait_all` is called is handled,
/// but handlers are no work, so `wait_all(None)` must return after a
/// bounded number of runs, not chase the handler until it stops.
#[test]
fn g01_a_handler_that_reraises_its_signal_does_not_hold_wait_all() {
    child(
        "probes52::g01_a_handler_that_reraises_its_signal_does_not_hold_wait_all",
        "p52-g01",
        || {
            let runs = Rc::new(Cell::new(0u32));
            let r = runs.clone();
            let _h = sylvan::signal(libc::SIGUSR1, move || {
                r.set(r.get() + 1);
                if r.get() < CAP {
                    raise_here(libc::SIGUSR1);
                }
            })
            .unwrap();
            raise_here(libc::SIGUSR1);
            let t = Instant::now();
            assert!(sylvan::wait_all(None));
            let n = runs.get();
            assert!(
                (1..10).contains(&n),
                "wait_all returned after {n} handler runs ({:?})",
                t.elapsed()
            );
        },
    );
}

/// The same with a timeout: `wait_all` returns true (no work is left)
/// well before its deadline, instead of running the handler until the
/// deadline and returning false.
#[test]
fn g02_a_reraising_handler_and_wait_all_with_a_timeout() {
    child(
        "probes52::g02_a_reraising_handler_and_wait_all_with_a_timeout",
        "p52-g02",
        || {
            let runs = Rc::new(Cell::new(0u32));
            let r = runs.clone();
            let _h = sylvan::signal(libc::SIGUSR1, move || {
                r.set(r.get() + 1);
                raise_here(libc::SIGUSR1);
            })
            .unwrap();
            raise_here(libc::SIGUSR1);
            let t = Instant::now();
            let done = sylvan::wait_all(Some(ms(300)));
            let took = t.elapsed();
            assert_eq!(
                (done, took < ms(200)),
                (true, true),
                "after {took:?} and {} runs",
                runs.get()
            );
        },
    );
}

/// A pending signal whose handler sleeps and spawns a greenlet that
/// sleeps: `wait_all` waits for all of it, and returns true.
#[test]
fn g03_a_handler_that_sleeps_and_spawns_is_waited_for() {
    child(
        "probes52::g03_a_handler_that_sleeps_and_spawns_is_waited_for",
        "p52-g03",
        || {
            let log = Rc::new(RefCell::new(Vec::new()));
            let l = log.clone();
            let _h = sylvan::signal(libc::SIGUSR1, move || {
                l.borrow_mut().push("start");
                sylvan::sleep(ms(20));
                let l2 = l.clone();
                sylvan::spawn(move || {
                    sylvan::sleep(ms(20));
                    l2.borrow_mut().push("spawned");
                });
                l.borrow_mut().push("end");
            })
            .unwrap();
            raise_here(libc::SIGUSR1);
            let t = Instant::now();
            assert!(sylvan::wait_all(Some(LONG)));
            assert!(t.elapsed() >= ms(40), "{:?}", t.elapsed());
            assert_eq!(*log.borrow(), ["start", "end", "spawned"]);
            // and a signal raised by the last greenlet, whose handler sleeps
            log.borrow_mut().clear();
            sylvan::spawn(|| {
                sylvan::sleep(ms(5));
                raise_here(libc::SIGUSR1);
            });
            assert!(sylvan::wait_all(Some(LONG)));
            assert_eq!(*log.borrow(), ["start", "end", "spawned"]);
        },
    );
}

/// Several signals pending at once (two kinds, two handlers for one of
/// them): every handler has run exactly once when `wait_all` returns. A
/// chain (a handler that raises another signal once) gets one round, as
/// in gevent: the second signal is handled at main's next block.
#[test]
fn g04_several_pending_signals_and_a_chain() {
    child(
        "probes52::g04_several_pending_signals_and_a_chain",
        "p52-g04",
        || {
            let (a, _ha) = counting(libc::SIGUSR1);
            let (b, _hb) = counting(libc::SIGUSR1);
            let (c, _hc) = counting(libc::SIGUSR2);
            raise_here(libc::SIGUSR1);
            raise_here(libc::SIGUSR2);
            raise_here(libc::SIGUSR1); // coalesces
            assert!(sylvan::wait_all(None));
            assert_eq!((a.get(), b.get(), c.get()), (1, 1, 1));
            // a chain: SIGWINCH's handler raises SIGUSR2
            let chained = Rc::new(Cell::new(0));
            let ch = chained.clone();
            let _hw = sylvan::signal(libc::SIGWINCH, move || {
                ch.set(ch.get() + 1);
                raise_here(libc::SIGUSR2);
            })
            .unwrap();
            raise_here(libc::SIGWINCH);
            assert!(sylvan::wait_all(Some(LONG)));
            // One round, as gevent's loop polls once more before it exits:
            // the signal pending at the end is handled, the one its
            // handler raises at main's next block.
            assert_eq!((chained.get(), c.get()), (1, 1), "(SIGWINCH, SIGUSR2) runs");
            assert!(crate::util::wait_for(LONG, || c.get() == 2));
            assert_eq!((a.get(), b.get()), (1, 1));
        },
    );
}

/// Main parked on an event only a handler sets, no signal ever coming:
/// it waits (no "would block forever", no early return), until the
/// `with_timeout` around it expires; `wait_all` afterwards still returns
/// at once, and the handler has never run.
#[test]
fn g05_main_parked_with_only_a_handler_alive_waits_until_its_timeout() {
    child(
        "probes52::g05_main_parked_with_only_a_handler_alive_waits_until_its_timeout",
        "p52-g05",
        || {
            let ev = Rc::new(Event::new());
            let runs = Rc::new(Cell::new(0));
            let (e, r) = (ev.clone(), runs.clone());
            let _h = sylvan::signal(libc::SIGUSR1, move || {
                r.set(r.get() + 1);
                e.set();
            })
            .unwrap();
            let t = Instant::now();
            let e = ev.clone();
            let got = sylvan::with_timeout(ms(100), move || e.wait());
            assert!(got.is_err(), "{got:?}");
            assert!(t.elapsed() >= ms(100), "{:?}", t.elapsed());
            assert!(!ev.wait_timeout(ms(30)));
            let t = Instant::now();
            assert!(sylvan::wait_all(None));
            assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
            assert_eq!(runs.get(), 0);
            // now the signal: the event is set before wait_all returns
            raise_here(libc::SIGUSR1);
            assert!(sylvan::wait_all(None));
            assert!(ev.is_set());
            assert_eq!(runs.get(), 1);
        },
    );
}
