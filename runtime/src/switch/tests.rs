//! Stress tests of both switches, driven through [`RawSwitch`] with tiny
//! schedulers of their own (no hub).

use std::cell::Cell;
use std::hint::black_box;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
use super::impls::Own;
use super::impls::{Corosensei, RawSwitch};
use crate::stack::{MIN_STACK_SIZE, Stack};

/// Runs `$test::<S>()` for every switch of this target.
macro_rules! both {
    ($test:ident) => {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        $test::<Own>();
        $test::<Corosensei>();
    };
}

/// xorshift64*: a deterministic pseudo-random sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A switch on the heap (a stable address) whose body gets a pointer back to
/// it, to suspend.
fn boxed<S: RawSwitch + 'static>(stack: Stack, body: impl FnOnce(*const S) + 'static) -> Box<S> {
    let mut s = Box::new(S::new());
    let p: *const S = &*s;
    // SAFETY: the switch is boxed and never moved out of its box; the body
    // catches its own panics (each test body below wraps its work in
    // `catch_unwind` and lets only the switch's forced unwind through).
    unsafe { s.init(stack, move || body(p)) };
    s
}

/// Suspends `s` from `depth` nested, non-inlined calls, keeping values live
/// in registers and on the stack across the switch, and checks them after.
#[inline(never)]
fn suspend_at<S: RawSwitch>(s: *const S, depth: u32, seed: u64) -> u64 {
    let a = black_box(seed.wrapping_mul(3));
    let f = black_box(seed as f64 * 0.5);
    let arr = black_box([seed ^ 1, seed ^ 2, seed ^ 3, seed ^ 4]);
    let r = if depth == 0 {
        // SAFETY: called by the body of `*s`, on its stack.
        unsafe { (*s).suspend() };
        seed
    } else {
        suspend_at(s, depth - 1, seed.wrapping_add(1))
    };
    assert_eq!(
        a,
        seed.wrapping_mul(3),
        "integer clobbered at depth {depth}"
    );
    assert_eq!(f, seed as f64 * 0.5, "float clobbered at depth {depth}");
    assert_eq!(arr, [seed ^ 1, seed ^ 2, seed ^ 3, seed ^ 4]);
    r ^ a
}

fn random_order_10k<S: RawSwitch + 'static>() {
    const N: usize = 10_000;
    const ROUNDS: u64 = 12;
    let done = Rc::new(Cell::new(0usize));
    let failed = Rc::new(Cell::new(0usize));
    let mut live: Vec<(usize, Box<S>)> = (0..N)
        .map(|i| {
            let stack = Stack::new(MIN_STACK_SIZE, i).expect("map a stack");
            let (done, failed) = (done.clone(), failed.clone());
            let s = boxed::<S>(stack, move |me| {
                let work = AssertUnwindSafe(|| {
                    let mine = black_box([i as u64; 8]);
                    let mut acc = 0u64;
                    for round in 0..ROUNDS {
                        let depth = ((i as u64 + round) % 4) as u32;
                        acc ^= suspend_at(me, depth, (i as u64) << 8 | round);
                        assert_eq!(mine, [i as u64; 8], "greenlet {i}'s stack changed");
                    }
                    black_box(acc)
                });
                match panic::catch_unwind(work) {
                    Ok(_) => done.set(done.get() + 1),
                    Err(_) => failed.set(failed.get() + 1),
                }
            });
            (i, s)
        })
        .collect();
    let mut rng = Rng(0x5eed_0007);
    let mut resumes = [0u64; N];
    while !live.is_empty() {
        let k = rng.below(live.len());
        let (i, s) = &live[k];
        resumes[*i] += 1;
        // SAFETY: the switch is initialised and not finished (finished ones
        // are removed below), and we are its resumer.
        if unsafe { s.resume() } {
            assert_eq!(resumes[*i], ROUNDS + 1, "greenlet {i} finished early");
            assert!(!s.is_mid_body());
            let (_, mut s) = live.swap_remove(k);
            assert!(s.take_stack().is_some());
        }
    }
    assert_eq!(
        failed.get(),
        0,
        "{}: values changed across a switch",
        S::LABEL
    );
    assert_eq!(done.get(), N);
}

#[test]
fn ten_thousand_switches_in_random_order_keep_every_stack_intact() {
    both!(random_order_10k);
}

/// Counts drops.
struct Guard(Rc<Cell<u32>>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[inline(never)]
fn guarded_suspend<S: RawSwitch>(s: *const S, depth: u32, drops: &Rc<Cell<u32>>) {
    let _g = Guard(drops.clone());
    if depth == 0 {
        // SAFETY: called by the body of `*s`, on its stack.
        unsafe { (*s).suspend() };
    } else {
        guarded_suspend(s, depth - 1, drops);
    }
    black_box(());
}

fn drop_suspended_body_runs_destructors<S: RawSwitch + 'static>() {
    let drops = Rc::new(Cell::new(0));
    let reached_end = Rc::new(Cell::new(false));
    let stack = Stack::new(MIN_STACK_SIZE, 3).unwrap();
    let (d, end) = (drops.clone(), reached_end.clone());
    let mut s = boxed::<S>(stack, move |me| {
        let _outer = Guard(d.clone());
        // The forced unwind passes through here: let it go on.
        if let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| guarded_suspend(me, 5, &d))) {
            panic::resume_unwind(p);
        }
        end.set(true);
    });
    // SAFETY: initialised, not finished, we are the resumer.
    assert!(!unsafe { s.resume() });
    assert!(s.is_mid_body());
    assert!(s.take_stack().is_none(), "a suspended body keeps its stack");
    assert_eq!(drops.get(), 0);
    s.drop_body();
    assert_eq!(
        drops.get(),
        7,
        "{}: six guards at depth and one at the top",
        S::LABEL
    );
    assert!(
        !reached_end.get(),
        "the body must not go on after the unwind"
    );
    assert!(!s.is_mid_body());
    drop(s);
    assert_eq!(drops.get(), 7);
}

#[test]
fn dropping_a_suspended_body_unwinds_it() {
    both!(drop_suspended_body_runs_destructors);
}

fn stacks_come_back<S: RawSwitch + 'static>() {
    let drops = Rc::new(Cell::new(0));
    let ran = Rc::new(Cell::new(false));

    // Unstarted: the closure is dropped unrun, the stack comes back.
    let g = Guard(drops.clone());
    let r = ran.clone();
    let mut s = boxed::<S>(Stack::new(MIN_STACK_SIZE, 1).unwrap(), move |_| {
        let _g = g;
        r.set(true);
    });
    assert!(!s.is_mid_body());
    let stack = s
        .take_stack()
        .expect("an unstarted body gives its stack back");
    assert_eq!(
        drops.get(),
        1,
        "{}: the unrun closure was dropped",
        S::LABEL
    );
    assert!(!ran.get());
    assert!(s.take_stack().is_none());
    drop(s);
    assert_eq!(drops.get(), 1, "dropped once");

    // The same stack again, for a body that runs to the end.
    let r = ran.clone();
    let mut s = boxed::<S>(stack, move |_| r.set(true));
    // SAFETY: initialised, not finished, we are the resumer.
    assert!(unsafe { s.resume() }, "the body finished");
    assert!(ran.get());
    assert!(!s.is_mid_body());
    assert!(s.take_stack().is_some());

    // Dropped unstarted without take_stack: the switch's own drop.
    let g = Guard(drops.clone());
    let s = boxed::<S>(Stack::new(MIN_STACK_SIZE, 2).unwrap(), move |_| drop(g));
    drop(s);
    assert_eq!(drops.get(), 2);
}

#[test]
fn unstarted_and_finished_bodies_give_their_stack_back() {
    both!(stacks_come_back);
}

/// Address of a local: where the stack pointer roughly is.
#[inline(always)]
fn here() -> usize {
    let x = 0u8;
    black_box(&x) as *const u8 as usize
}

/// Recurses with 512-byte frames until less than `margin` bytes are left
/// above `limit`, suspends at the bottom, and checks every frame on the way
/// back. Returns the depth and the lowest address reached.
#[inline(never)]
fn recurse_near_limit<S: RawSwitch>(
    s: *const S,
    limit: usize,
    margin: usize,
    n: u64,
) -> (u64, usize) {
    let frame = black_box([n; 64]);
    let sp = here();
    let bottom = if sp < limit + margin {
        // SAFETY: called by the body of `*s`, on its stack.
        unsafe { (*s).suspend() };
        (n, sp)
    } else {
        recurse_near_limit(s, limit, margin, n + 1)
    };
    assert_eq!(frame, [n; 64]);
    bottom
}

fn deep_recursion_near_the_limit<S: RawSwitch + 'static>() {
    const SIZE: usize = 64 * 1024;
    let stack = Stack::new(SIZE, 5).unwrap();
    let limit = stack.limit();
    let bottom = Rc::new(Cell::new((0, usize::MAX)));
    let b = bottom.clone();
    let mut s = boxed::<S>(stack, move |me| {
        // 4 KiB margin: enough for the switch and a debug build's frames.
        let r = panic::catch_unwind(AssertUnwindSafe(|| recurse_near_limit(me, limit, 4096, 0)));
        b.set(r.unwrap_or((0, usize::MAX)));
    });
    // SAFETY: initialised, not finished, we are the resumer.
    assert!(!unsafe { s.resume() });
    // SAFETY: as above; suspended at the bottom of the recursion.
    assert!(unsafe { s.resume() });
    assert!(s.take_stack().is_some());
    let (depth, lowest) = bottom.get();
    assert!(depth > 10, "{}: only {depth} frames", S::LABEL);
    assert!(
        lowest > limit && lowest - limit < 4096,
        "{}: the recursion stopped {} bytes above the limit",
        S::LABEL,
        lowest.wrapping_sub(limit)
    );
}

#[test]
fn deep_recursion_near_the_stack_limit_survives_switches() {
    both!(deep_recursion_near_the_limit);
}

/// A body above either switch's inline bound (a closure that captured a
/// big value) is boxed rather than placed on the stack, and runs.
fn large_body_runs<S: RawSwitch + 'static>() {
    let big = [7u8; 4096];
    let sum = Rc::new(Cell::new(0u64));
    let out = sum.clone();
    let s = boxed::<S>(Stack::new(64 * 1024, 0).unwrap(), move |_| {
        out.set(big.iter().map(|&b| u64::from(b)).sum());
    });
    // SAFETY: initialised, not finished, we are the resumer.
    assert!(unsafe { s.resume() });
    assert_eq!(sum.get(), 7 * 4096);
}

#[test]
fn large_bodies_are_boxed_and_run() {
    both!(large_body_runs);
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod own {
    use super::*;

    #[test]
    fn a_body_that_swallows_its_forced_unwind_is_leaked_not_looped_on() {
        let tries = Rc::new(Cell::new(0u32));
        let t = tries.clone();
        let mut s = boxed::<Own>(Stack::new(MIN_STACK_SIZE, 4).unwrap(), move |me| {
            loop {
                // SAFETY: the body of `*me`, on its stack.
                let r = panic::catch_unwind(AssertUnwindSafe(|| unsafe { (*me).suspend() }));
                if r.is_err() {
                    t.set(t.get() + 1);
                }
            }
        });
        // SAFETY: initialised, not finished, we are the resumer.
        assert!(!unsafe { s.resume() });
        s.drop_body();
        assert_eq!(tries.get(), super::super::x86_64::MAX_FORCED_UNWINDS);
        assert!(!s.is_mid_body());
    }

    use std::cell::RefCell;

    use super::super::x86_64::Switch;

    /// A bare own switch on the heap running `body(&switch)`.
    fn own_switch(colour: usize, body: impl FnOnce(*const Switch) + 'static) -> Box<Switch> {
        let mut s = Box::new(Switch::empty());
        let p: *const Switch = &*s;
        // SAFETY: boxed and never moved out of its box; the bodies below let
        // only the forced unwind of a drop out.
        unsafe { s.init(Stack::new(MIN_STACK_SIZE, colour).unwrap(), move || body(p)) };
        s
    }

    thread_local! {
        /// The mark each `switch_to` below leaves: the switch it entered.
        static LAST_TO: Cell<usize> = const { Cell::new(0) };
    }

    /// `switch_to` from `from` into `to`, from `depth` non-inlined calls
    /// deep, with values live across it, checked after.
    #[inline(never)]
    fn switch_to_at(from: *const Switch, to: *const Switch, depth: u32, seed: u64) {
        let a = black_box(seed.wrapping_mul(7));
        let f = black_box(seed as f64 * 0.25);
        if depth == 0 {
            // SAFETY: the callers run on `from`'s stack, as its body, and
            // `to` is another switch of this thread, suspended; `LAST_TO` is
            // this thread's, valid for a write.
            LAST_TO.with(|cell| unsafe { (*from).switch_to(&*to, cell.as_ptr(), to as usize) });
        } else {
            switch_to_at(from, to, depth - 1, seed ^ 5);
        }
        assert_eq!(
            a,
            seed.wrapping_mul(7),
            "integer clobbered at depth {depth}"
        );
        assert_eq!(f, seed as f64 * 0.25, "float clobbered at depth {depth}");
    }

    /// `suspend` of `s` from `depth` non-inlined calls deep, with values
    /// live across it, checked after.
    #[inline(never)]
    fn suspend_own_at(s: *const Switch, depth: u32, seed: u64) {
        let a = black_box(seed.wrapping_mul(3));
        let arr = black_box([seed ^ 1, seed ^ 2, seed ^ 3]);
        if depth == 0 {
            // SAFETY: the callers run on `s`'s stack, as its body.
            unsafe { (*s).suspend() };
        } else {
            suspend_own_at(s, depth - 1, seed ^ 9);
        }
        assert_eq!(
            a,
            seed.wrapping_mul(3),
            "integer clobbered at depth {depth}"
        );
        assert_eq!(arr, [seed ^ 1, seed ^ 2, seed ^ 3]);
    }

    #[test]
    fn switch_to_hands_the_resumer_over() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let drops = Rc::new(Cell::new(0));
        let b_slot: Rc<Cell<*const Switch>> = Rc::new(Cell::new(std::ptr::null()));
        let a_slot: Rc<Cell<*const Switch>> = Rc::new(Cell::new(std::ptr::null()));
        let (l, bs) = (log.clone(), b_slot.clone());
        let a = own_switch(1, move |me| {
            l.borrow_mut().push("a1");
            switch_to_at(me, bs.get(), 3, 11);
            l.borrow_mut().push("a2");
        });
        let (l, d, as_) = (log.clone(), drops.clone(), a_slot.clone());
        let b = own_switch(2, move |me| {
            let _g = Guard(d);
            l.borrow_mut().push("b1");
            // SAFETY: the body of `*me`, on its stack.
            unsafe { (*me).suspend() };
            l.borrow_mut().push("b2");
            switch_to_at(me, as_.get(), 2, 29);
            l.borrow_mut()
                .push("b3 (never: dropped while switched away)");
        });
        a_slot.set(&*a);
        b_slot.set(&*b);
        // A runs and switches to B, which had not started (its entry runs
        // through `switch_to`) and suspends: back here, as if A suspended.
        // SAFETY: initialised, not finished, we are the resumer.
        assert!(!unsafe { a.resume() });
        assert_eq!(*log.borrow(), ["a1", "b1"]);
        assert_eq!(
            LAST_TO.get(),
            &*b as *const Switch as usize,
            "the switch stores its mark"
        );
        assert!(a.is_mid_body() && b.is_mid_body());
        // B goes on and switches to A, which finishes: its end comes back
        // here, through the resume of B.
        // SAFETY: as above.
        assert!(unsafe { b.resume() }, "A's end reaches B's resumer");
        assert_eq!(*log.borrow(), ["a1", "b1", "b2", "a2"]);
        assert!(!a.is_mid_body(), "A finished");
        assert!(b.is_mid_body(), "B waits in switch_to");
        // Dropping B unwinds it out of `switch_to`.
        let mut b = b;
        b.drop_body();
        assert_eq!(drops.get(), 1, "B's destructors ran");
        assert!(!b.is_mid_body());
        assert_eq!(log.borrow().len(), 4);
    }

    #[test]
    fn random_switch_to_and_suspend_keep_every_stack_intact() {
        const N: usize = 64;
        const STEPS: u64 = 20_000;
        let rng = Rc::new(Cell::new(0x9E37_79B9_7F4A_7C15u64));
        let next = |rng: &Cell<u64>, n: usize| {
            let mut r = Rng(rng.get());
            let v = r.below(n);
            rng.set(r.0);
            v
        };
        // The body that runs now, as the resumer must learn it.
        let running = Rc::new(Cell::new(usize::MAX));
        let steps = Rc::new(Cell::new(0u64));
        let all: Rc<RefCell<Vec<*const Switch>>> = Rc::new(RefCell::new(Vec::new()));
        let bodies: Vec<Box<Switch>> = (0..N)
            .map(|i| {
                let (rng, running, steps, all) =
                    (rng.clone(), running.clone(), steps.clone(), all.clone());
                own_switch(i % 7, move |me| {
                    let mut round = 0u64;
                    loop {
                        assert_eq!(running.get(), i, "body {i} runs unannounced");
                        steps.set(steps.get() + 1);
                        round += 1;
                        let seed = (i as u64) << 32 | round;
                        if next(&rng, 2) == 0 {
                            let j = (i + 1 + next(&rng, N - 1)) % N;
                            let to = all.borrow()[j];
                            running.set(j);
                            switch_to_at(me, to, (round % 4) as u32, seed);
                        } else {
                            suspend_own_at(me, (round % 3) as u32, seed);
                        }
                    }
                })
            })
            .collect();
        *all.borrow_mut() = bodies.iter().map(|b| &**b as *const Switch).collect();
        let mut resumes = 0u64;
        while steps.get() < STEPS {
            let i = next(&rng, N);
            running.set(i);
            // SAFETY: initialised, never finishing, not running (we run).
            assert!(!unsafe { bodies[i].resume() });
            resumes += 1;
        }
        assert!(
            resumes < steps.get(),
            "some switches went body to body ({resumes} resumes, {} steps)",
            steps.get()
        );
        drop(bodies);
    }

    #[test]
    fn this_machine_runs_without_shadow_stacks() {
        assert!(!super::super::x86_64::shadow_stack_active());
    }

    #[inline(never)]
    fn capture_at_depth(n: u32) -> String {
        if n == 0 {
            std::backtrace::Backtrace::force_capture().to_string()
        } else {
            let s = capture_at_depth(n - 1);
            black_box(s)
        }
    }

    #[test]
    fn backtraces_end_at_the_greenlet_entry() {
        let trace = Rc::new(Cell::new(String::new()));
        let t = trace.clone();
        let s = boxed::<Own>(Stack::new(256 * 1024, 0).unwrap(), move |_| {
            t.set(capture_at_depth(3));
        });
        // SAFETY: initialised, not finished, we are the resumer.
        assert!(unsafe { s.resume() });
        let trace = trace.take();
        let frames: Vec<&str> = trace
            .lines()
            .filter(|l| {
                l.trim_start()
                    .split(':')
                    .next()
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            })
            .collect();
        assert!(
            trace.contains("capture_at_depth"),
            "no frame of the body in:\n{trace}"
        );
        let last = frames.last().expect("frames");
        assert!(
            last.contains("sylvan_greenlet_entry"),
            "the last frame is not the entry:\n{trace}"
        );
        assert!(
            !trace.contains("__rust_begin_short_backtrace"),
            "the trace ran past the greenlet's stack into the test harness:\n{trace}"
        );
    }
}
