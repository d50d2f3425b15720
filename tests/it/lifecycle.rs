//! spawn, join, kill: the greenlet lifecycle.

use std::cell::Cell;
use std::panic;
use std::rc::Rc;
use std::time::Duration;

use crate::util::{DropFlag, Log};

#[test]
fn spawned_greenlets_start_in_fifo_order_when_main_blocks() {
    let log = Log::default();
    let gs: Vec<_> = (0..5)
        .map(|i| {
            let log = log.clone();
            sylvan::spawn(move || log.push(format!("g{i}")))
        })
        .collect();
    log.push("main before block");
    assert!(!gs[0].is_started());
    sylvan::joinall(&gs, None);
    assert_eq!(
        log.take(),
        ["main before block", "g0", "g1", "g2", "g3", "g4"]
    );
}

#[test]
fn join_returns_value_panic_or_killed() {
    assert_eq!(sylvan::spawn(|| 42).join().unwrap(), 42);

    let p = sylvan::spawn(|| -> u32 { panic!("boom {}", 7) });
    sylvan::set_error_policy(sylvan::ErrorPolicy::Custom(Rc::new(|_| {})));
    let err = p.join().unwrap_err();
    let panic = err.panic().expect("a panic");
    assert_eq!(panic.message(), "boom 7");
    assert!(
        panic.location().unwrap().contains("lifecycle.rs"),
        "{:?}",
        panic.location()
    );

    let k = sylvan::spawn(|| sylvan::sleep(Duration::from_secs(60)));
    sylvan::yield_now();
    k.kill();
    assert!(matches!(k.join(), Err(sylvan::Error::Killed)));
}

#[test]
fn kill_before_start_drops_the_body_at_once_and_gives_its_stack_back() {
    // Warm the pool so that the spawns below need no new stack.
    let warm: Vec<_> = (0..8).map(|_| sylvan::spawn(|| ())).collect();
    sylvan::joinall(&warm, None);
    let before = sylvan::stats();
    for _ in 0..100 {
        let dropped = Rc::new(Cell::new(0));
        let flag = DropFlag(dropped.clone());
        let g = sylvan::spawn(move || {
            let _keep = &flag;
            unreachable!("a killed unstarted greenlet never runs");
        });
        assert_eq!(dropped.get(), 0);
        g.kill();
        assert_eq!(dropped.get(), 1, "the body's captures drop with the kill");
        assert!(g.join().unwrap_err().is_killed());
    }
    sylvan::sleep(Duration::from_millis(1));
    let after = sylvan::stats();
    assert_eq!(
        after.stacks_mapped, before.stacks_mapped,
        "each cancelled greenlet gave its stack reservation back"
    );
}

#[test]
fn kill_before_start_never_runs_and_links_fire() {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let g = sylvan::spawn(move || r.set(true));
    let linked = Rc::new(Cell::new(0));
    let l = linked.clone();
    g.link(move |o| {
        assert!(matches!(o, sylvan::Outcome::Killed));
        l.set(l.get() + 1);
    });
    g.kill_nowait();
    assert!(
        g.is_dead(),
        "an unstarted greenlet is cancelled synchronously"
    );
    assert!(!g.is_started());
    sylvan::sleep(Duration::from_millis(1));
    assert!(!ran.get());
    assert_eq!(linked.get(), 1);
    assert!(g.join().unwrap_err().is_killed());
}

#[test]
fn kill_of_a_dead_greenlet_is_a_no_op() {
    let g = sylvan::spawn(|| 5);
    assert!(g.wait(None));
    g.kill();
    g.kill_nowait();
    assert_eq!(g.join().unwrap(), 5);
}

#[test]
fn kill_runs_destructors_of_a_greenlet_parked_in_sleep() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let after = Rc::new(Cell::new(false));
    let a = after.clone();
    let g = sylvan::spawn(move || {
        let _guard = DropFlag(d);
        sylvan::sleep(Duration::from_secs(3600));
        a.set(true);
    });
    sylvan::yield_now();
    assert!(g.is_started() && !g.is_dead());
    assert_eq!(sylvan::stats().timers, 1);
    g.kill();
    assert!(g.is_dead());
    assert_eq!(drops.get(), 1, "the guard on the killed stack was dropped");
    assert!(!after.get());
    assert_eq!(sylvan::stats().timers, 0, "the sleep's timer left with it");
}

#[test]
fn a_greenlet_killing_itself_unwinds_at_once() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let slot: Rc<Cell<Option<sylvan::GreenletId>>> = Rc::default();
    let me = Rc::new(std::cell::RefCell::new(None::<sylvan::Greenlet<()>>));
    let me2 = me.clone();
    let after = Rc::new(Cell::new(false));
    let a = after.clone();
    let g = sylvan::spawn(move || {
        let _guard = DropFlag(d);
        let h = me2.borrow_mut().take().unwrap();
        slot.set(Some(h.id()));
        h.kill();
        a.set(true);
    });
    // hand the greenlet its own handle through a side channel
    let g2 = sylvan::spawn(|| ());
    drop(g2);
    *me.borrow_mut() = Some(g);
    sylvan::sleep(Duration::from_millis(1));
    assert_eq!(drops.get(), 1);
    assert!(!after.get());
}

#[test]
fn panic_in_one_greenlet_leaves_the_others_running() {
    sylvan::set_error_policy(sylvan::ErrorPolicy::Custom(Rc::new(|_| {})));
    let done = Rc::new(Cell::new(0));
    let mut gs = vec![];
    for i in 0..10 {
        let done = done.clone();
        gs.push(sylvan::spawn(move || {
            sylvan::sleep(Duration::from_millis(1));
            if i == 3 {
                panic!("greenlet 3 fails");
            }
            sylvan::sleep(Duration::from_millis(1));
            done.set(done.get() + 1);
        }));
    }
    let results: Vec<_> = gs.into_iter().map(|g| g.join()).collect();
    assert_eq!(done.get(), 9);
    assert!(results[3].as_ref().unwrap_err().is_panic());
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 9);
}

#[test]
fn ten_thousand_greenlets_spawn_and_join() {
    let gs: Vec<_> = (0..10_000u64)
        .map(|i| {
            sylvan::spawn(move || {
                sylvan::yield_now();
                i * 2
            })
        })
        .collect();
    let sum: u64 = gs.into_iter().map(|g| g.join().unwrap()).sum();
    assert_eq!(sum, 2 * (0..10_000u64).sum::<u64>());
    assert_eq!(sylvan::stats().alive, 0);
}

#[test]
fn kill_with_timeout_reports_a_survivor_and_killall_lists_it() {
    let stubborn = || {
        sylvan::spawn(|| {
            // Catches its kill (thrown once) and goes on sleeping.
            let r = panic::catch_unwind(|| sylvan::sleep(Duration::from_secs(3600)));
            assert!(sylvan::is_unwind_payload(&*r.unwrap_err()));
            sylvan::sleep(Duration::from_millis(200));
            "survived"
        })
    };
    let g = stubborn();
    sylvan::yield_now();
    assert!(!g.kill_timeout(Duration::from_millis(20)));
    assert!(!g.is_dead());
    assert_eq!(g.join().unwrap(), "survived", "a kill is thrown once");

    let gs = vec![stubborn(), sylvan::spawn(|| "plain")];
    sylvan::yield_now();
    let err = sylvan::killall(&gs, Some(Duration::from_millis(20))).unwrap_err();
    assert_eq!(err.0, vec![gs[0].id()]);
    assert!(gs[1].is_dead());
    assert!(sylvan::killall(&gs, Some(Duration::from_secs(5))).is_ok());
}

#[test]
fn killall_cancels_unstarted_greenlets_synchronously() {
    let gs: Vec<_> = (0..3).map(|_| sylvan::spawn(|| ())).collect();
    sylvan::killall(&gs, None).unwrap();
    assert!(gs.iter().all(|g| g.is_dead() && !g.is_started()));
}

#[test]
fn blocking_in_a_destructor_during_a_kill_does_not_switch() {
    struct SleepsOnDrop(Rc<Cell<bool>>);
    impl Drop for SleepsOnDrop {
        fn drop(&mut self) {
            let t = std::time::Instant::now();
            sylvan::sleep(Duration::from_secs(5)); // returns at once: unwinding
            sylvan::yield_now();
            self.0.set(t.elapsed() < Duration::from_secs(1));
        }
    }
    let ok = Rc::new(Cell::new(false));
    let o = ok.clone();
    let g = sylvan::spawn(move || {
        let _d = SleepsOnDrop(o);
        sylvan::sleep(Duration::from_secs(3600));
    });
    sylvan::yield_now();
    g.kill();
    assert!(ok.get());
}

#[test]
fn main_blocking_forever_panics_with_what_it_waits_on() {
    // Two greenlets wait for each other; main waits for the first.
    type Slot = Rc<std::cell::RefCell<Option<Rc<sylvan::Greenlet<()>>>>>;
    let slot: Slot = Rc::default();
    let s2 = slot.clone();
    let a = Rc::new(sylvan::spawn(move || {
        let b = s2.borrow().clone().unwrap();
        b.wait(None);
    }));
    let a2 = a.clone();
    let b = Rc::new(sylvan::spawn(move || {
        a2.wait(None);
    }));
    *slot.borrow_mut() = Some(b);
    let r = panic::catch_unwind(panic::AssertUnwindSafe(|| a.wait(None)));
    let msg = sylvan::runtime::payload_message(&*r.unwrap_err());
    let want = format!(
        "would block forever: main is waiting on the join of greenlet {}",
        a.id()
    );
    assert!(msg.contains(&want), "{msg}");
    // The hub is intact: new greenlets still run.
    assert_eq!(sylvan::spawn(|| 1).join().unwrap(), 1);
    // Break the cycle so thread exit can kill both.
    slot.borrow_mut().take();
}

/// A greenlet that waits for itself panics with a message saying so, and
/// the panic points at the program's call, not into sylvan.
#[test]
fn waiting_for_itself_panics_at_the_callers_line() {
    type Seen = Rc<std::cell::RefCell<Option<(String, Option<String>)>>>;
    let failed: Seen = Rc::default();
    let seen = failed.clone();
    sylvan::set_error_policy(sylvan::ErrorPolicy::Custom(Rc::new(move |f| {
        let p = f.error.panic().expect("a panic");
        let file = p.location().map(str::to_owned);
        *seen.borrow_mut() = Some((p.message().to_owned(), file));
    })));
    let me: Rc<std::cell::RefCell<Option<sylvan::Greenlet<()>>>> = Rc::default();
    let slot = me.clone();
    let g = sylvan::spawn(move || {
        let own = slot.borrow_mut().take().expect("handed over");
        own.wait(None);
    });
    *me.borrow_mut() = Some(g);
    sylvan::yield_now();
    let (msg, file) = failed
        .borrow_mut()
        .take()
        .expect("the failure was reported");
    assert!(msg.contains("cannot wait for itself"), "{msg}");
    let at = file.unwrap_or_default();
    assert!(at.starts_with(&format!("{}:", file!())), "{at}: {msg}");
}
