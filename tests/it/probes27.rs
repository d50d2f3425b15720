//! Probe round 27: a memory-safety audit under valgrind memcheck.
//!
//! The unit tests of `sylvan-runtime` and `sylvan-hub` and the integration
//! modules `switch`, `stacks`, `lifecycle`, `local`, `probes23`, `sync`,
//! `pool`, `time`, `os`, `net` and this file were run under
//! `valgrind --tool=memcheck --track-origins=yes --leak-check=full` on the
//! own x86-64 switch, and the runtime and hub unit tests with the first
//! integration modules on `--cfg sylvan_corosensei`. The stack registration
//! (`ValgrindStackRegistration` in `runtime/src/stack.rs`) keeps valgrind
//! quiet about the switches themselves: no "client switching stacks?"
//! warning, no use of uninitialised values, no definitely-lost block.
//!
//! One finding, fixed since: `Switch::place` (own switch,
//! `runtime/src/switch/x86_64.rs`) writes an inline body and its first
//! frame just below the top of a *pooled* stack, from the hub's stack.
//! memcheck had marked that memory no-access when the stack's previous
//! greenlet returned from its frames (SP moved up), so a body larger than
//! the previous greenlet's entry frames (a 1900-byte capture after an
//! 8-byte one) drew "Invalid write" in `place`, "Invalid read" in
//! `resume_with` and `start`, and "Invalid write" in
//! `sylvan_greenlet_entry`: 22 error contexts, failing any user's valgrind
//! run, though nothing was corrupted. `StackPool::put` now marks a returned
//! stack's memory undefined with a memcheck client request;
//! `memcheck_accepts_bodies_placed_on_reused_stacks` runs the test that
//! showed it under valgrind (when installed).
//!
//! The rest are regression tests: each drives one of the unsafe paths read
//! hardest in the audit through the public API and checks the values and
//! drop counts that a memory error there would corrupt, without valgrind.
//! Each test's doc comment names the `// SAFETY:` invariant it leans on.
//! Every test is bounded (`bounded`, or a bounded loop).

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::util::DropFlag;
use crate::util::{bounded, yield_until};

// ----- bodies placed on the stack, boxed, or kept in big records -----------

/// A capture of `N` bytes whose checksum the body recomputes.
struct Bytes<const N: usize>([u8; N]);

impl<const N: usize> Bytes<N> {
    fn new(seed: u8) -> Self {
        let mut b = [0u8; N];
        for (i, x) in b.iter_mut().enumerate() {
            *x = seed.wrapping_add((i * 7) as u8);
        }
        Bytes(b)
    }

    fn sum(&self) -> u64 {
        self.0
            .iter()
            .enumerate()
            .map(|(i, &x)| (i as u64 + 1) * u64::from(x))
            .sum()
    }
}

/// An over-aligned capture: the switch boxes bodies aligned above 64.
#[repr(align(128))]
struct Aligned(u64);

/// Spawns a body capturing `cap` and a drop flag, joins it, and checks that
/// the body saw the captured bytes intact and that the capture was dropped
/// exactly once.
fn run_with<const N: usize>(seed: u8) {
    let drops = Rc::new(Cell::new(0));
    let cap = Bytes::<N>::new(seed);
    let want = cap.sum();
    let flag = DropFlag(drops.clone());
    let g = sylvan::spawn(move || {
        let _flag = flag;
        sylvan::yield_now(); // a switch with the capture live on the stack
        cap.sum()
    });
    assert_eq!(bounded(|| g.join()).unwrap(), want, "{N}-byte capture");
    assert_eq!(drops.get(), 1, "{N}-byte capture dropped once");
}

/// Bodies of every size class keep their captures intact across a switch
/// and drop them once: small ones written just below the stack top,
/// ones near and past the 2 KiB inline bound (boxed), ones past the 4 KiB
/// record-cache bound, and an over-aligned one. Run twice, so that the
/// second run reuses the pooled stacks and cached records of the first.
///
/// Leans on `Switch::place` ("[frame, top) lies in the stack's read-write
/// part ... both addresses are aligned for what is written there"), on
/// `start` ("`body` is the closure `place` wrote, read exactly once") and
/// on `Record::new` / `RecordCache::take` ("a fresh block of `Block<T, F>`'s
/// layout, unaliased").
#[test]
fn bodies_of_every_size_class_keep_their_captures_and_drop_once() {
    for round in 0..2u8 {
        run_with::<8>(round);
        run_with::<1900>(round);
        run_with::<2100>(round);
        run_with::<5000>(round);
        run_with::<9000>(round);
        let drops = Rc::new(Cell::new(0));
        let flag = DropFlag(drops.clone());
        let a = Aligned(0xfeed_0000 + u64::from(round));
        let g = sylvan::spawn(move || {
            let _flag = flag;
            let addr = &a as *const Aligned as usize;
            sylvan::yield_now();
            (addr % 128, a.0)
        });
        let (misalign, v) = bounded(|| g.join()).unwrap();
        assert_eq!(misalign, 0, "an over-aligned capture is aligned");
        assert_eq!(v, 0xfeed_0000 + u64::from(round));
        assert_eq!(drops.get(), 1);
    }
}

/// Bodies of every size class that never run are dropped exactly once when
/// killed, whether the kill comes before the hub ever popped them or after
/// their stack was bound (spawned behind a yield).
///
/// Leans on `Switch::drop_unstarted` ("the body never ran, so the closure
/// `place` wrote at `body` is still there ... `take` makes this the only
/// drop") and on `record::cancel` ("the body is moved out before it is
/// dropped").
#[test]
fn unstarted_bodies_of_every_size_class_drop_once_when_killed() {
    fn kill_unstarted<const N: usize>() {
        let drops = Rc::new(Cell::new(0));
        let flag = DropFlag(drops.clone());
        let cap = Bytes::<N>::new(3);
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let g = sylvan::spawn(move || {
            r.set(true);
            let _flag = flag;
            cap.sum()
        });
        g.kill();
        assert!(g.is_dead());
        assert!(
            !ran.get(),
            "{N}: a greenlet killed before it ran never runs"
        );
        assert_eq!(drops.get(), 1, "{N}: the unrun body is dropped once");
        assert!(bounded(|| g.join()).unwrap_err().is_killed());
        assert_eq!(drops.get(), 1, "{N}: and not again by join");
    }
    bounded(|| {
        for _ in 0..2 {
            kill_unstarted::<8>();
            kill_unstarted::<1900>();
            kill_unstarted::<2100>();
            kill_unstarted::<5000>();
        }
    });
}

/// The destructor of an unrun body may use the hub: here it spawns a
/// greenlet, which then runs normally, and the killed greenlet's own
/// capture is dropped once.
///
/// Leans on `Switch::drop_unstarted` ("the switch is emptied before the
/// closure's destructors run ... they then find nothing left to drop
/// twice") and `Core::cancel_unstarted` ("Dead first").
#[test]
fn an_unrun_bodys_destructor_may_spawn() {
    struct SpawnOnDrop(Rc<RefCell<Vec<sylvan::Greenlet<u32>>>>, Rc<Cell<u32>>);
    impl Drop for SpawnOnDrop {
        fn drop(&mut self) {
            self.1.set(self.1.get() + 1);
            self.0.borrow_mut().push(sylvan::spawn(|| 41 + 1));
        }
    }
    bounded(|| {
        let spawned = Rc::new(RefCell::new(Vec::new()));
        let drops = Rc::new(Cell::new(0));
        let guard = SpawnOnDrop(spawned.clone(), drops.clone());
        let big = Bytes::<2100>::new(9);
        let g = sylvan::spawn(move || {
            let _g = guard;
            big.sum()
        });
        g.kill();
        assert_eq!(drops.get(), 1);
        let inner = spawned.borrow_mut().pop().expect("the destructor spawned");
        assert_eq!(inner.join().unwrap(), 42);
        assert!(g.join().unwrap_err().is_killed());
        assert_eq!(drops.get(), 1);
    });
}

// ----- values left in records ---------------------------------------------

/// A value is dropped exactly once wherever it ends: in the greenlet (the
/// handle was dropped before it finished: detached), through `join`, or
/// with the handle after the greenlet finished unjoined. Records of
/// different value types but equal layouts are recycled between them.
///
/// Leans on `record::start` ("only the hub's table holds the record: no
/// handle and no link will ever see the value. Dropped here"), `release`
/// ("that was the last reference") and `RecordCache::put`/`take`.
#[test]
fn values_are_dropped_once_however_the_record_ends() {
    bounded(|| {
        let drops = Rc::new(Cell::new(0));
        // detached before it finished: dropped in the greenlet
        for i in 0..20u32 {
            let d = drops.clone();
            drop(sylvan::spawn(move || {
                sylvan::yield_now();
                DropFlag(d)
            }));
            yield_until("the detached greenlet finished", || drops.get() == i + 1);
        }
        assert_eq!(drops.get(), 20);
        // joined: the caller owns it
        for k in 0..20 {
            let d = drops.clone();
            let v = sylvan::spawn(move || DropFlag(d)).join().unwrap();
            assert_eq!(
                drops.get(),
                20 + k,
                "not dropped before the caller drops it"
            );
            drop(v);
        }
        assert_eq!(drops.get(), 40);
        // finished unjoined, then the handle dropped
        let gs: Vec<_> = (0..20)
            .map(|_| {
                let d = drops.clone();
                sylvan::spawn(move || DropFlag(d))
            })
            .collect();
        assert!(sylvan::joinall(&gs, None));
        assert_eq!(drops.get(), 40, "kept for the handles");
        drop(gs);
        assert_eq!(drops.get(), 60);
        // records of another type with the same layout reuse the blocks
        let rc = Rc::new(5u64);
        let gs: Vec<_> = (0..20)
            .map(|i| {
                let rc = rc.clone();
                sylvan::spawn(move || Rc::strong_count(&rc) + i)
            })
            .collect();
        for (i, g) in gs.into_iter().enumerate() {
            assert!(g.join().unwrap() > i);
        }
        assert_eq!(Rc::strong_count(&rc), 1, "every capture dropped");
        assert_eq!(drops.get(), 60);
    });
}

// ----- greenlet-locals ------------------------------------------------------

sylvan::greenlet_local! {
    static L0: Cell<u64> = Cell::new(100);
    static L1: RefCell<Vec<u64>> = RefCell::new(vec![1]);
    static L2: Cell<u64> = Cell::new(2);
    static L3: Cell<u64> = Cell::new(3);
    static L4: Cell<u64> = Cell::new(4);
    static L5: Cell<u64> = Cell::new(5);
    static L6: Cell<u64> = Cell::new(6);
    static L7: Cell<u64> = Cell::new(7);
    static L8: Cell<u64> = Cell::new(8);
    static L9: String = "nine".repeat(50);
}

/// Touches the keys L2..L9 (making their values on first use), growing the
/// greenlet's list of values.
fn touch_the_rest() -> u64 {
    L2.with(|v| v.get())
        + L3.with(|v| v.get())
        + L4.with(|v| v.get())
        + L5.with(|v| v.get())
        + L6.with(|v| v.get())
        + L7.with(|v| v.get())
        + L8.with(|v| v.get())
        + L9.with(|s| s.len() as u64)
}

/// A reference given by `with` stays valid while the same greenlet makes
/// more values (the list reallocates) and while other greenlets do the
/// same between its yields: each greenlet reads back only what it wrote.
///
/// Leans on `GreenletLocal::with` ("the value is boxed (it does not move
/// when the list grows) and is dropped only by `Locals::clear`").
#[test]
fn greenlet_local_references_survive_the_list_growing() {
    bounded(|| {
        let gs: Vec<_> = (0..8u64)
            .map(|i| {
                sylvan::spawn(move || {
                    L0.with(|a| {
                        a.set(1000 + i);
                        L1.with(|v| {
                            v.borrow_mut().push(i);
                            let rest = touch_the_rest();
                            sylvan::yield_now();
                            assert_eq!(a.get(), 1000 + i);
                            v.borrow_mut().push(rest);
                            sylvan::yield_now();
                            v.borrow().clone()
                        })
                    })
                })
            })
            .collect();
        for (i, g) in (0..8u64).zip(gs) {
            assert_eq!(g.join().unwrap(), vec![1, i, 35 + 200]);
        }
        // main's own values are untouched by the greenlets'
        assert_eq!(L0.with(|a| a.get()), 100);
        assert_eq!(L1.with(|v| v.borrow().clone()), vec![1]);
    });
}

/// Counts values made and dropped: a greenlet-local's destructor that
/// touches another key remakes it (when it is gone already) and every value
/// made is dropped exactly once, in the greenlet, whether it returned or
/// was killed.
struct Counted {
    made: Rc<Cell<u32>>,
    dropped: Rc<Cell<u32>>,
    touch_other: bool,
}

thread_local! {
    static COUNTS: (Rc<Cell<u32>>, Rc<Cell<u32>>) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
}

fn counted(touch_other: bool) -> Counted {
    COUNTS.with(|(m, d)| {
        m.set(m.get() + 1);
        Counted {
            made: m.clone(),
            dropped: d.clone(),
            touch_other,
        }
    })
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.dropped.set(self.dropped.get() + 1);
        assert!(
            self.dropped.get() <= self.made.get(),
            "dropped more than made"
        );
        if self.touch_other {
            CB.with(|_| ());
        }
    }
}

sylvan::greenlet_local! {
    static CA: Counted = counted(true);
    static CB: Counted = counted(false);
}

/// Leans on `Locals::clear` (values dropped in rounds, "a destructor that
/// touches a greenlet-local makes a new value, dropped in the next round")
/// and `ClearLocals` (dropped while the greenlet unwinds from a kill, still
/// on its stack).
#[test]
fn greenlet_local_destructors_that_remake_values_drop_each_once() {
    bounded(|| {
        let (made, dropped) = COUNTS.with(|(m, d)| (m.clone(), d.clone()));
        let (m0, d0) = (made.get(), dropped.get());
        // returned: CB is made first, so CA's destructor remakes it
        let g = sylvan::spawn(|| {
            CB.with(|_| ());
            CA.with(|_| ());
        });
        g.join().unwrap();
        assert_eq!(made.get() - m0, 3, "CB, CA, and CB again");
        assert_eq!(dropped.get() - d0, 3);
        // killed while parked inside `with`
        let g =
            sylvan::spawn(|| CA.with(|_| CB.with(|_| sylvan::sleep(Duration::from_secs(3600)))));
        sylvan::yield_now();
        g.kill();
        assert!(g.join().unwrap_err().is_killed());
        assert_eq!(made.get() - m0, 6, "CA, CB, and CB again");
        assert_eq!(made.get(), dropped.get(), "every value made was dropped");
    });
}

// ----- thread exit ----------------------------------------------------------

/// At thread exit every greenlet still parked (at depth, in a timer, in an
/// event wait) is unwound on its own stack and every unstarted one is
/// dropped unrun: each capture is dropped exactly once, and the thread
/// exits normally.
///
/// Leans on `Hub::teardown` ("on the thread's own stack, the task is
/// suspended mid-body, nothing of the hub is borrowed") and on
/// `HubOwner::drop` / `hub()` ("HUB is cleared right after that teardown").
#[test]
fn thread_exit_unwinds_parked_and_drops_unstarted_greenlets_once() {
    struct ArcFlag(std::sync::Arc<AtomicU32>);
    impl Drop for ArcFlag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    #[inline(never)]
    fn deep(n: u32, ev: &sylvan::sync::Event) {
        let pad = std::hint::black_box([n as u8; 64]);
        if n == 0 {
            ev.wait();
        } else {
            deep(n - 1, ev);
        }
        std::hint::black_box(pad);
    }
    let drops = std::sync::Arc::new(AtomicU32::new(0));
    let d = drops.clone();
    std::thread::spawn(move || {
        let ev = Rc::new(sylvan::sync::Event::new());
        let mut handles = Vec::new();
        for i in 0..30u32 {
            let flag = ArcFlag(d.clone());
            let ev = ev.clone();
            handles.push(sylvan::spawn(move || {
                let _flag = flag;
                match i % 3 {
                    0 => sylvan::sleep(Duration::from_secs(3600)),
                    1 => deep(20, &ev),
                    _ => drop(ev.wait()),
                }
            }));
        }
        sylvan::yield_now(); // all 30 park
        for _ in 0..10 {
            let flag = ArcFlag(d.clone());
            let big = Bytes::<2100>::new(1);
            // never started: the thread ends first
            drop(sylvan::spawn(move || {
                let _flag = flag;
                big.sum()
            }));
        }
        // half the handles dropped (detached), half kept to the end
        handles.truncate(15);
        assert_eq!(d.load(Ordering::SeqCst), 0);
    })
    .join()
    .expect("the thread exits normally");
    assert_eq!(drops.load(Ordering::SeqCst), 40);
}

// ----- os::Fd ---------------------------------------------------------------

/// An `Fd` round trip: a socket wrapped, read through while a greenlet
/// writes, then given back by `into_inner` still open and blocking again;
/// and an `Fd` dropped with its object closes it once (the peer sees EOF).
///
/// Leans on `Fd::into_inner` / `Source`'s `ManuallyDrop` ("`io` is moved
/// out exactly once and never dropped in place") and on the `fcntl`
/// calls' "a descriptor that `io` keeps open".
#[test]
fn an_fd_is_given_back_open_and_dropped_once() {
    use std::os::unix::net::UnixStream;
    bounded(|| {
        let (a, b) = UnixStream::pair().unwrap();
        let fd = sylvan::os::Fd::new(a).unwrap();
        let writer = sylvan::spawn(move || {
            let mut b = b;
            b.write_all(b"hello").unwrap();
            b
        });
        let mut buf = [0u8; 5];
        (&fd).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        let mut b = writer.join().unwrap();
        let mut a = fd.into_inner();
        // blocking again, and still open: a plain blocking round trip
        b.write_all(b"x").unwrap();
        let mut one = [0u8; 1];
        a.read_exact(&mut one).unwrap();
        assert_eq!(one[0], b'x');
        // wrapped again, then dropped with the object: closed once
        let fd = sylvan::os::Fd::new(a).unwrap();
        drop(fd);
        let mut rest = Vec::new();
        assert_eq!(b.read_to_end(&mut rest).unwrap(), 0, "EOF: the end closed");
    });
}

/// The finding of this round, kept fixed: the test that drew memcheck's
/// invalid reads and writes on reused pooled stacks
/// (`bodies_of_every_size_class_keep_their_captures_and_drop_once`) runs
/// clean under `valgrind --tool=memcheck`. Leans on `StackPool::put`'s
/// client request (`runtime/src/valgrind.rs`). Skipped, saying so, where
/// valgrind is not installed.
#[test]
fn memcheck_accepts_bodies_placed_on_reused_stacks() {
    crate::util::memcheck(
        &["probes27::bodies_of_every_size_class_keep_their_captures_and_drop_once"],
        &[],
        Duration::from_secs(120),
    );
}
