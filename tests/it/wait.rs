//! sylvan::wait and sylvan::iwait over greenlets, events and async results.

use std::rc::Rc;
use std::time::{Duration, Instant};

use sylvan::sync::{AsyncResult, BoundedSemaphore, Event, Semaphore};

const MS: Duration = Duration::from_millis(1);

fn sleeper(ms: u64) -> sylvan::Greenlet<u64> {
    sylvan::spawn(move || {
        sylvan::sleep(Duration::from_millis(ms));
        ms
    })
}

#[test]
fn iwait_yields_in_completion_order() {
    let gs = [sleeper(30), sleeper(10), sleeper(20)];
    let objs: Vec<&dyn sylvan::Waitable> = gs.iter().map(|g| g as _).collect();
    let order: Vec<usize> = sylvan::iwait(&objs, None).collect();
    assert_eq!(order, [1, 2, 0]);
}

#[test]
fn wait_with_count_and_timeout() {
    let gs = [sleeper(40), sleeper(5), sleeper(10)];
    let objs: Vec<&dyn sylvan::Waitable> = gs.iter().map(|g| g as _).collect();
    assert_eq!(sylvan::wait(&objs, None, Some(1)), [1]);
    let t = Instant::now();
    // Within 20 ms only the 10 ms one (and the 5 ms one, ready already).
    assert_eq!(sylvan::wait(&objs, Some(20 * MS), None), [1, 2]);
    assert!(t.elapsed() >= 10 * MS);
    assert_eq!(sylvan::wait(&objs, None, None), [1, 2, 0]);
    assert!(sylvan::wait(&[], None, None).is_empty());
}

#[test]
fn wait_mixes_greenlets_events_and_async_results() {
    let ev = Rc::new(Event::new());
    let res: Rc<AsyncResult<u32, ()>> = Rc::new(AsyncResult::new());
    let (e, r) = (ev.clone(), res.clone());
    let g = sylvan::spawn(move || {
        sylvan::sleep(2 * MS);
        r.set(1).unwrap();
        sylvan::sleep(2 * MS);
        e.set();
        sylvan::sleep(2 * MS);
    });
    let order = sylvan::wait(&[&g, &*ev, &*res], None, None);
    assert_eq!(order, [2, 1, 0]);
    assert_eq!(ev.waiters(), 0);
    assert_eq!(res.waiters(), 0);
}

#[test]
fn leaving_iwait_early_removes_its_registrations() {
    let ev = Rc::new(Event::new());
    let res: Rc<AsyncResult<u32, ()>> = Rc::new(AsyncResult::new());
    let fast = sleeper(1);
    {
        let objs: [&dyn sylvan::Waitable; 3] = [&*ev, &*res, &fast];
        let mut it = sylvan::iwait(&objs, None);
        assert_eq!(it.next(), Some(2));
        // Between items the others stay registered, as in gevent
        // (test__iwait's `test_iwait_nogarbage`: linkcount is 1)...
        assert_eq!(ev.waiters(), 1);
        assert_eq!(res.waiters(), 1);
    } // ...and dropping the iterator leaves nothing behind.
    assert_eq!(ev.waiters(), 0);
    assert_eq!(res.waiters(), 0);
    // A later set must not cut main's sleep short (no stale wake-up).
    let e = ev.clone();
    sylvan::spawn(move || {
        sylvan::sleep(2 * MS);
        e.set();
    });
    let t = Instant::now();
    sylvan::sleep(15 * MS);
    assert!(t.elapsed() >= 15 * MS);
}

/// gevent's test__iwait `test_iwait_nogarbage`: after the first item the
/// other semaphore is still linked once; leaving the iterator unlinks it.
#[test]
fn iwait_keeps_one_link_per_pending_object_until_dropped() {
    let sem1 = Rc::new(Semaphore::new(0));
    let sem2 = Semaphore::new(0);
    let s1 = sem1.clone();
    let releaser = sylvan::spawn(move || s1.release());
    {
        let objs: [&dyn sylvan::Waitable; 2] = [&*sem1, &sem2];
        let mut it = sylvan::iwait(&objs, None);
        assert_eq!(it.next(), Some(0));
        assert_eq!(sem2.watchers(), 1);
        assert_eq!(sem1.watchers(), 0);
        assert_eq!(
            sem2.waiters(),
            0,
            "watching takes no place in the acquire queue"
        );
    }
    assert_eq!(sem2.watchers(), 0);
    releaser.join().unwrap();
}

/// A `Waitable` that forgets each waiter once it has woken it, and can
/// wake without being ready (a spurious wake-up).
#[derive(Default)]
struct OneShot {
    up: std::cell::Cell<bool>,
    watchers: std::cell::RefCell<Vec<sylvan::Waiter>>,
}

impl OneShot {
    fn poke(&self, up: bool) {
        self.up.set(up);
        for w in self.watchers.take() {
            w.wake();
        }
    }
}

impl sylvan::Waitable for OneShot {
    fn is_ready(&self) -> bool {
        self.up.get()
    }
    fn watch(&self, w: sylvan::Waiter) -> usize {
        self.watchers.borrow_mut().push(w);
        0
    }
    fn unwatch(&self, w: sylvan::Waiter, _token: usize) {
        self.watchers.borrow_mut().retain(|x| *x != w);
    }
}

#[test]
fn iwait_watches_again_after_a_spurious_wake_up() {
    let flag = Rc::new(OneShot::default());
    let f = flag.clone();
    let g = sylvan::spawn(move || {
        sylvan::sleep(MS);
        f.poke(false); // wakes the iterator, not ready: it must watch again
        sylvan::sleep(MS);
        f.poke(true);
    });
    let objs: [&dyn sylvan::Waitable; 1] = [&*flag];
    let got: Vec<usize> = sylvan::iwait(&objs, Some(Duration::from_secs(10))).collect();
    assert_eq!(got, [0]);
    assert!(flag.watchers.borrow().is_empty());
    g.join().unwrap();
}

#[test]
fn a_greenlet_killed_in_iwait_leaves_no_registration() {
    let ev = Rc::new(Event::new());
    let res: Rc<AsyncResult<u32, ()>> = Rc::new(AsyncResult::new());
    let (e, r) = (ev.clone(), res.clone());
    let g = sylvan::spawn(move || sylvan::wait(&[&*e, &*r], None, None));
    sylvan::yield_now();
    assert_eq!((ev.waiters(), res.waiters()), (1, 1));
    g.kill();
    assert_eq!((ev.waiters(), res.waiters()), (0, 0));
}

#[test]
fn iwait_timeout_ends_the_iteration() {
    let ev = Event::new();
    let slow = sleeper(60_000);
    let t = Instant::now();
    let got: Vec<usize> = sylvan::iwait(&[&ev, &slow], Some(10 * MS)).collect();
    assert!(got.is_empty());
    assert!(t.elapsed() >= 10 * MS);
    assert_eq!(ev.waiters(), 0);
    slow.kill();
}

/// gevent: a Semaphore is waitable (AbstractLinkable): `wait([sem])`
/// returns once a permit is free, and waiting takes no permit.
#[test]
fn wait_on_a_semaphore_returns_when_a_permit_frees_and_takes_none() {
    let sem = Rc::new(Semaphore::new(1));
    let held = sem.acquire();
    // Taken: not ready; a timeout ends the wait empty-handed.
    assert!(sylvan::wait(&[&*sem], Some(5 * MS), None).is_empty());
    let waiter = {
        let sem = sem.clone();
        sylvan::spawn(move || sylvan::wait(&[&*sem], Some(Duration::from_secs(5)), None))
    };
    sylvan::yield_now(); // it parks, registered on the semaphore
    drop(held);
    assert_eq!(waiter.join().unwrap(), [0]);
    assert_eq!(sem.available(), 1, "waiting took no permit");
    // Free already: at once.
    assert_eq!(sylvan::wait(&[&*sem], None, None), [0]);
}

/// A release that frees a permit someone else takes before the waiter
/// runs is still reported (gevent notifies the semaphore's links), and a
/// BoundedSemaphore is waitable the same way.
#[test]
fn wait_reports_a_semaphore_release_even_if_the_permit_is_taken_first() {
    let sem = Rc::new(BoundedSemaphore::new(1));
    sem.acquire().forget();
    let waiter = {
        let sem = sem.clone();
        sylvan::spawn(move || sylvan::wait(&[&*sem], Some(Duration::from_secs(5)), None))
    };
    sylvan::yield_now();
    sem.release().unwrap();
    let taken = sem.acquire(); // before the waiter runs
    assert_eq!(waiter.join().unwrap(), [0]);
    drop(taken);
}

/// Once the timeout passed (here while the loop body ran) and `next` found
/// nothing ready, the iteration is over: an object that becomes ready later
/// is not reported, and the iterator left no registration on it.
#[test]
fn iwait_ends_for_good_once_its_timeout_passed_between_items() {
    crate::util::bounded(|| {
        let first = Rc::new(Event::new());
        let late = Rc::new(Semaphore::new(0));
        let f = first.clone();
        let setter = sylvan::spawn(move || f.set());
        let objs: [&dyn sylvan::Waitable; 2] = [&*first, &*late];
        let mut it = sylvan::iwait(&objs, Some(20 * MS));
        assert_eq!(it.next(), Some(0));
        assert_eq!(late.watchers(), 1, "registered while waiting for the first");
        sylvan::sleep(40 * MS); // the loop body outlasts the timeout
        assert_eq!(it.next(), None);
        assert_eq!(
            late.watchers(),
            0,
            "a finished iteration holds no registration"
        );
        late.release();
        assert_eq!(it.next(), None, "ready after the end, not reported");
        assert_eq!(it.size_hint(), (0, Some(0)));
        setter.join().unwrap();
    });
}

/// A `Waitable` whose `watch` panics.
struct PanicsOnWatch;

impl sylvan::Waitable for PanicsOnWatch {
    fn is_ready(&self) -> bool {
        false
    }
    fn watch(&self, _waiter: sylvan::Waiter) -> usize {
        panic!("PanicsOnWatch::watch")
    }
    fn unwatch(&self, _waiter: sylvan::Waiter, _token: usize) {
        unreachable!("never watched")
    }
}

/// A `watch` that panics part-way through iwait's registrations does not
/// leave the ones made before it behind.
#[test]
fn iwait_undoes_its_registrations_when_a_watch_panics() {
    crate::util::bounded(|| {
        let sem = Semaphore::new(0);
        let objs: [&dyn sylvan::Waitable; 2] = [&sem, &PanicsOnWatch];
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            sylvan::iwait(&objs, None).next()
        }));
        let msg = caught.expect_err("watch panicked");
        assert_eq!(msg.downcast_ref::<&str>(), Some(&"PanicsOnWatch::watch"));
        assert_eq!(sem.watchers(), 0, "the semaphore's registration was undone");
        // The hub's wait-set table is sound: a later iwait works.
        sem.release();
        assert_eq!(sylvan::iwait(&[&sem], None).next(), Some(0));
    });
}
