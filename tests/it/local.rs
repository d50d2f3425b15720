//! `greenlet_local!`: one value per greenlet (gevent's `gevent.local`),
//! made lazily, dropped when its greenlet ends however it ends.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use sylvan::GreenletId;

use crate::util::{bounded, quiet};

thread_local! {
    static INITS: Cell<u32> = const { Cell::new(0) };
    static DROPS: RefCell<Vec<(String, GreenletId)>> = const { RefCell::new(Vec::new()) };
}

/// Records, when dropped, its label and the greenlet that dropped it.
struct Tracked(RefCell<String>);

impl Drop for Tracked {
    fn drop(&mut self) {
        let label = self.0.borrow().clone();
        DROPS.with(|d| d.borrow_mut().push((label, sylvan::current())));
    }
}

fn drops() -> Vec<(String, GreenletId)> {
    DROPS.with(|d| std::mem::take(&mut *d.borrow_mut()))
}

sylvan::greenlet_local! {
    static COUNTER: Cell<u32> = {
        INITS.with(|i| i.set(i.get() + 1));
        Cell::new(100)
    };
    static TRACKED: Tracked = Tracked(RefCell::new("fresh".into()));
}

#[test]
fn each_greenlet_sees_its_own_value_across_switches() {
    bounded(|| {
        let gs: Vec<_> = (0..5u32)
            .map(|i| {
                sylvan::spawn(move || {
                    COUNTER.with(|c| c.set(i));
                    for _ in 0..3 {
                        sylvan::yield_now();
                        COUNTER.with(|c| c.set(c.get() + 10));
                    }
                    COUNTER.with(|c| c.get())
                })
            })
            .collect();
        let got: Vec<u32> = gs.into_iter().map(|g| g.join().unwrap()).collect();
        assert_eq!(got, [30, 31, 32, 33, 34]);
        // Main's value is its own, untouched by theirs.
        assert_eq!(COUNTER.with(|c| c.get()), 100);
    });
}

#[test]
fn the_initializer_runs_once_per_greenlet_on_first_use_only() {
    bounded(|| {
        INITS.with(|i| i.set(0));
        let user = sylvan::spawn(|| {
            COUNTER.with(|c| c.set(1));
            COUNTER.with(|c| c.get())
        });
        let idle = sylvan::spawn(|| 7);
        assert_eq!(user.join().unwrap(), 1);
        assert_eq!(idle.join().unwrap(), 7);
        assert_eq!(
            INITS.with(Cell::get),
            1,
            "once for `user`, never for `idle`"
        );
        // A child does not inherit its spawner's value.
        let parent = sylvan::spawn(|| {
            COUNTER.with(|c| c.set(5));
            sylvan::spawn(|| COUNTER.with(|c| c.get())).join().unwrap()
        });
        assert_eq!(parent.join().unwrap(), 100);
    });
}

#[test]
fn values_are_dropped_in_their_greenlet_however_it_ends() {
    bounded(|| {
        quiet();
        drops();
        let returned = sylvan::spawn(|| {
            TRACKED.with(|t| *t.0.borrow_mut() = "returned".into());
            sylvan::current()
        });
        let returned_id = returned.join().unwrap();
        let panicked = sylvan::spawn(|| {
            TRACKED.with(|t| *t.0.borrow_mut() = "panicked".into());
            panic!("boom");
        });
        let panicked_id = panicked.id();
        assert!(panicked.join().unwrap_err().is_panic());
        let parked = Rc::new(Cell::new(false));
        let p = parked.clone();
        let killed = sylvan::spawn(move || {
            TRACKED.with(|t| *t.0.borrow_mut() = "killed".into());
            p.set(true);
            sylvan::sleep(Duration::from_secs(60));
        });
        let killed_id = killed.id();
        crate::util::yield_until("parked", || parked.get());
        killed.kill();
        assert_eq!(
            drops(),
            [
                ("returned".to_owned(), returned_id),
                ("panicked".to_owned(), panicked_id),
                ("killed".to_owned(), killed_id),
            ]
        );
        // Killed before it ever ran: no value was made, none dropped.
        let never = sylvan::spawn(|| TRACKED.with(|_| ()));
        never.kill();
        assert!(drops().is_empty());
    });
}

sylvan::greenlet_local! {
    static OUTER: Outer = Outer;
    static INNER: Cell<u32> = Cell::new(0);
}

/// Touches another greenlet-local while being dropped.
struct Outer;

impl Drop for Outer {
    fn drop(&mut self) {
        INNER.with(|i| i.set(i.get() + 1));
        DROPS.with(|d| d.borrow_mut().push(("outer".into(), sylvan::current())));
    }
}

#[test]
fn a_destructor_may_use_other_greenlet_locals() {
    bounded(|| {
        drops();
        let g = sylvan::spawn(|| {
            OUTER.with(|_| ());
            sylvan::current()
        });
        let id = g.join().unwrap();
        assert_eq!(drops(), [("outer".to_owned(), id)]);
    });
}

sylvan::greenlet_local! {
    static BASE: Cell<u32> = Cell::new(40);
    static DERIVED: u32 = BASE.with(|b| b.get()) + 2;
}

#[test]
fn an_initializer_may_use_other_greenlet_locals() {
    bounded(|| {
        let g = sylvan::spawn(|| DERIVED.with(|d| *d));
        assert_eq!(g.join().unwrap(), 42);
    });
}

sylvan::greenlet_local! {
    static EXPLODES: Exploding = Exploding;
}

struct Exploding;

impl Drop for Exploding {
    fn drop(&mut self) {
        panic!("a greenlet-local destructor failed");
    }
}

#[test]
fn a_destructor_that_panics_after_a_return_makes_the_outcome_a_panic() {
    bounded(|| {
        quiet();
        let g = sylvan::spawn(|| {
            EXPLODES.with(|_| ());
            5
        });
        let e = g.join().unwrap_err();
        assert!(e.is_panic(), "{e}");
        assert!(
            e.to_string().contains("a greenlet-local destructor failed"),
            "{e}"
        );
    });
}

#[test]
fn link_callbacks_get_their_own_values() {
    bounded(|| {
        let seen = Rc::new(Cell::new(0));
        let s = seen.clone();
        let g = sylvan::spawn(|| COUNTER.with(|c| c.set(1)));
        g.link(move |_| s.set(COUNTER.with(|c| c.get())));
        g.join().unwrap();
        crate::util::yield_until("the callback ran", || seen.get() != 0);
        assert_eq!(seen.get(), 100);
    });
}
