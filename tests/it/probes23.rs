//! Probe round 23: a soundness audit through the safe public API. Each test
//! aims at the invariant an `unsafe` block's `// SAFETY:` comment relies on
//! (the hub's task table and `cur` pointer, task records and their counts,
//! greenlet-local value pointers, the switch, the overflow handler, the
//! signal pipe) and tries to break it with code a user could write:
//! re-entrancy from the error policy, link callbacks, destructors run on the
//! hub and greenlet-local initializers; handles dropped at odd moments;
//! panics whose payloads panic on drop; `std::process::exit` and `fork`
//! inside a greenlet; the smallest stacks through sylvan's own panic and
//! kill paths; `mem::forget` of guards; values sent to other threads. A
//! finding is a crash, a hang, a wrong value, a double or missing drop, or
//! a `RefCell` borrow panic escaping sylvan's internals.
//!
//! Tests marked `//! their `ignore`; the rest are regression tests. Every test is bounded
//! (`bounded`, or a child process run under `bounded`).

use std::cell::{Cell, RefCell};
use std::os::unix::process::ExitStatusExt;
use std::rc::Rc;
use std::time::Duration;

use crate::util::{DropFlag, bounded, in_child, is_child, quiet, run_child_limited, texts};

// ----- std::process::exit and fork inside a greenlet ----------------------

/// `std::process::exit` from a greenlet: glibc's `exit` runs the calling
/// thread's TLS destructors, so the hub is torn down (`Hub::teardown`, from
/// `HubOwner::drop`) while a greenlet's stack is the one running; teardown
/// then "kills" that running greenlet by `resume`-ing it from its own stack,
/// against `Core::resume`'s contract ("called from the thread's own stack").
/// The process must exit with the status asked for.
#[test]
fn process_exit_from_a_greenlet_exits_with_its_status() {
    const NAME: &str = "p23-exit-greenlet";
    if is_child(NAME) {
        bounded(|| {
            // Others parked, so that teardown has greenlets to kill.
            let _sleepers: Vec<_> = (0..3)
                .map(|_| sylvan::spawn(|| sylvan::sleep(Duration::from_secs(60))))
                .collect();
            let g = sylvan::spawn(|| {
                sylvan::sleep(Duration::from_millis(1));
                println!("CHILD exiting");
                std::process::exit(7);
            });
            let _ = g.join();
            println!("CHILD main resumed after exit");
        });
        return;
    }
    let out = run_child_limited(
        "probes23::process_exit_from_a_greenlet_exits_with_its_status",
        NAME,
        &[],
        Duration::from_secs(15),
    )
    .expect("the child calling exit(7) in a greenlet hung");
    let (stdout, stderr) = texts(&out);
    assert!(stdout.contains("CHILD exiting"), "{stdout}\n{stderr}");
    assert_eq!(
        (out.status.code(), out.status.signal()),
        (Some(7), None),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

/// The same from main while greenlets are parked: the teardown then runs on
/// main's stack, as at a normal thread exit; the parked greenlets' guards
/// run (their destructors print).
#[test]
fn process_exit_from_main_with_parked_greenlets_exits_cleanly() {
    const NAME: &str = "p23-exit-main";
    if is_child(NAME) {
        struct Say(&'static str);
        impl Drop for Say {
            fn drop(&mut self) {
                println!("{}", self.0);
            }
        }
        let _sleepers: Vec<_> = (0..3)
            .map(|_| {
                sylvan::spawn(|| {
                    let _s = Say("CHILD unwound");
                    sylvan::sleep(Duration::from_secs(60))
                })
            })
            .collect();
        sylvan::sleep(Duration::from_millis(2));
        std::process::exit(5);
    }
    let out = run_child_limited(
        "probes23::process_exit_from_main_with_parked_greenlets_exits_cleanly",
        NAME,
        &[],
        Duration::from_secs(15),
    )
    .expect("the child calling exit(5) in main hung");
    let (stdout, stderr) = texts(&out);
    assert_eq!(
        stdout.matches("CHILD unwound").count(),
        3,
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert_eq!(
        (out.status.code(), out.status.signal()),
        (Some(5), None),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

/// `fork` with a greenlet parked on a socket, the forked child then exiting through
/// `std::process::exit` as a worker process would. The child's copy of the
/// hub is torn down (glibc runs the thread's TLS destructors in `exit`):
/// its parked greenlets unwind and their sockets deregister. The epoll
/// instance is shared with the parent across `fork`, so a deregistration
/// by descriptor number there removes the parent's own registration of the
/// same socket: the parent's reader must still be woken by data.
#[test]
fn a_forked_child_that_exits_leaves_the_parents_sockets_registered() {
    in_child(
        "probes23::a_forked_child_that_exits_leaves_the_parents_sockets_registered",
        "p23-fork",
        || {
            use std::io::{Read, Write};
            let (a, b) = sylvan::net::UnixStream::pair().unwrap();
            let reader = sylvan::spawn(move || {
                let mut buf = [0u8; 8];
                let n = (&a).read(&mut buf).unwrap();
                buf[..n].to_vec()
            });
            sylvan::sleep(Duration::from_millis(1));
            // From main, so that the forked child's exit tears its hub down
            // on main's stack (exit from a greenlet is a bug of its own,
            // see `process_exit_from_a_greenlet_exits_with_its_status`).
            // SAFETY: fork in a test child process; the forked child only
            // exits.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                std::process::exit(0);
            }
            let mut status = 0;
            for _ in 0..2000 {
                // SAFETY: polls our own child; `status` is a valid out-pointer.
                if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
                    break;
                }
                sylvan::sleep(Duration::from_millis(1));
            }
            assert!(libc::WIFEXITED(status), "forked child: {status:#x}");
            assert!(!reader.is_dead(), "the reader is parked");
            (&b).write_all(b"hi").unwrap();
            let got = sylvan::with_timeout(Duration::from_secs(2), || reader.join())
                .expect("the parent's reader was never woken after the fork")
                .unwrap();
            assert_eq!(got, b"hi");
        },
    );
}

// ----- the error policy, re-entered ---------------------------------------

/// `ErrorPolicy::Custom` runs on the hub while `Hub::report` holds a borrow
/// of the failed greenlet's `failure` cell (the `&Error` it hands over).
/// `join` of that greenlet from inside the policy does not block (it is
/// dead), so it is allowed there; it must return the failure, not panic
/// with `RefCell`'s "already borrowed".
#[test]
fn a_custom_error_policy_can_join_the_greenlet_that_failed() {
    bounded(|| {
        let slot: Rc<RefCell<Option<sylvan::Greenlet<()>>>> = Rc::default();
        let seen: Rc<RefCell<Option<String>>> = Rc::default();
        let (s2, seen2) = (slot.clone(), seen.clone());
        sylvan::set_error_policy(sylvan::ErrorPolicy::Custom(Rc::new(move |_| {
            if let Some(g) = s2.borrow_mut().take() {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| g.join()));
                *seen2.borrow_mut() = Some(match r {
                    Ok(Err(e)) => format!("err panicked={}", e.is_panic()),
                    Ok(Ok(())) => "ok".to_owned(),
                    Err(p) => format!("join panicked: {}", sylvan::runtime::payload_message(&*p)),
                });
            }
        })));
        let g = sylvan::spawn(|| panic!("p23 boom"));
        *slot.borrow_mut() = Some(g);
        sylvan::sleep(Duration::from_millis(2));
        assert_eq!(seen.borrow().as_deref(), Some("err panicked=true"));
        quiet();
    });
}

/// `with_outcome` (a shared borrow) from inside the policy works, and
/// `unlink_all` there does not disturb the report under way.
#[test]
fn a_custom_error_policy_can_read_the_outcome_and_unlink() {
    bounded(|| {
        let slot: Rc<RefCell<Option<sylvan::Greenlet<u8>>>> = Rc::default();
        let seen: Rc<RefCell<Vec<String>>> = Rc::default();
        let (s2, seen2) = (slot.clone(), seen.clone());
        sylvan::set_error_policy(sylvan::ErrorPolicy::Custom(Rc::new(move |f| {
            seen2.borrow_mut().push(format!("policy {}", f.error));
            if let Some(g) = &*s2.borrow() {
                let o = g.with_outcome(|o| match o {
                    sylvan::Outcome::Panicked(p) => p.message().to_owned(),
                    _ => "other".to_owned(),
                });
                seen2.borrow_mut().push(format!("outcome {o:?}"));
                g.unlink_all();
            }
        })));
        let g: sylvan::Greenlet<u8> = sylvan::spawn(|| panic!("p23 bang"));
        let s3 = seen.clone();
        g.link(move |_| s3.borrow_mut().push("link".to_owned()));
        *slot.borrow_mut() = Some(g);
        sylvan::sleep(Duration::from_millis(2));
        let g = slot.borrow_mut().take().unwrap();
        assert!(g.join().unwrap_err().is_panic());
        let seen = seen.borrow().clone();
        assert!(
            seen[0].starts_with("policy greenlet panicked: p23 bang at "),
            "{seen:?}"
        );
        assert_eq!(seen[1], "outcome Some(\"p23 bang\")");
        // The link was registered before the failure: it was already taken
        // by on_dead and runs (unlink_all cuts it by sequence number).
        assert!(seen.len() <= 3, "{seen:?}");
        quiet();
    });
}

/// A policy whose panic payload panics again when dropped: the doc of
/// `ErrorPolicy::Custom` says a panic in it "is caught and printed; it harms
/// neither the hub nor other greenlets". The payload is dropped by
/// `ErrorPolicy::handle` after `catch_unwind`, outside it.
#[test]
fn a_policy_panic_whose_payload_panics_on_drop_harms_nothing() {
    in_child(
        "probes23::a_policy_panic_whose_payload_panics_on_drop_harms_nothing",
        "p23-policy-bomb",
        || {
            sylvan::set_error_policy(sylvan::ErrorPolicy::Custom(Rc::new(|_| {
                std::panic::panic_any(Bomb)
            })));
            let failed = sylvan::spawn(|| panic!("p23 fails"));
            let r = std::panic::catch_unwind(|| sylvan::sleep(Duration::from_millis(2)));
            assert!(r.is_ok(), "a panic escaped into main's sleep");
            assert!(failed.join().unwrap_err().is_panic());
            // The hub still works.
            let g = sylvan::spawn(|| 40 + 2);
            assert_eq!(g.join().unwrap(), 42);
        },
    );
}

/// A payload whose destructor panics.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("p23: the panic payload's destructor panics");
    }
}

/// A value whose destructor panics with a [`Bomb`] payload.
struct DropsBomb;

impl Drop for DropsBomb {
    fn drop(&mut self) {
        std::panic::panic_any(Bomb);
    }
}

/// `drop_caught` (hub.rs) drops what a greenlet left behind on the hub and
/// catches a panic there; the payload it caught is dropped after the catch.
/// Here a detached greenlet's value (kept because a `link_exception`
/// callback was registered, then dropped unrun) panics with a `Bomb`.
#[test]
fn a_left_behind_value_whose_panic_payload_panics_on_drop_harms_nothing() {
    in_child(
        "probes23::a_left_behind_value_whose_panic_payload_panics_on_drop_harms_nothing",
        "p23-left-bomb",
        || {
            let g = sylvan::spawn(|| DropsBomb);
            g.link_exception(|_| {});
            drop(g);
            let r = std::panic::catch_unwind(|| sylvan::sleep(Duration::from_millis(2)));
            assert!(r.is_ok(), "a panic escaped into main's sleep");
            let g = sylvan::spawn(|| 40 + 2);
            assert_eq!(g.join().unwrap(), 42);
        },
    );
}

// ----- greenlet_local! ----------------------------------------------------

thread_local! {
    static REENTER: Cell<bool> = const { Cell::new(false) };
}

sylvan::greenlet_local! {
    static SELF_TOUCHING: Cell<u32> = self_touching_init();
}

/// An initializer that, the first time, reads its own key (as a lazily
/// configured logger may): the nested `with` makes a value too.
fn self_touching_init() -> Cell<u32> {
    if REENTER.with(|r| r.replace(false)) {
        SELF_TOUCHING.with(|v| v.set(v.get() + 100));
    }
    Cell::new(1)
}

/// A greenlet-local initializer that touches its own key. `GreenletLocal::
/// with` does not hold the list borrowed while the initializer runs (it may
/// use other greenlet-locals), so the nested access makes and stores a
/// value, then the outer one stores a second value under the same key. The
/// outer `with` hands its closure the second value, while every later
/// access finds the first: a write made in the first `with` is lost. (std's
/// `thread_local!` keeps the outer initializer's value, which the outer
/// closure wrote.)
#[test]
fn a_greenlet_local_initializer_that_touches_its_own_key_keeps_one_value() {
    bounded(|| {
        let g = sylvan::spawn(|| {
            REENTER.with(|r| r.set(true));
            SELF_TOUCHING.with(|v| v.set(7));
            SELF_TOUCHING.with(|v| v.get())
        });
        assert_eq!(g.join().unwrap(), 7, "the first with()'s write was lost");
    });
}

sylvan::greenlet_local! {
    static DROPS_SEEN: RefCell<Vec<String>> = RefCell::new(Vec::new());
    static REPORTER: Reporter = Reporter;
}

/// Pushes into the same greenlet's `DROPS_SEEN` when dropped, then blocks.
struct Reporter;

impl Drop for Reporter {
    fn drop(&mut self) {
        // The other value may be gone already (dropped in the order made):
        // touching it re-creates it, dropped in the next round.
        DROPS_SEEN.with(|d| d.borrow_mut().push("reporter".to_owned()));
        sylvan::sleep(Duration::from_millis(1));
    }
}

/// Greenlet-local destructors run in their greenlet at its end, may block
/// and may re-create other greenlet-locals; the values handed to `with`
/// stay valid through a kill that lands inside `with`.
#[test]
fn greenlet_locals_survive_kills_inside_with_and_blocking_destructors() {
    bounded(|| {
        let drops = Rc::new(Cell::new(0));
        let gs: Vec<_> = (0..50u32)
            .map(|i| {
                let d = drops.clone();
                sylvan::spawn(move || {
                    REPORTER.with(|_| ());
                    DROPS_SEEN.with(|seen| {
                        seen.borrow_mut().push(format!("g{i}"));
                        let _f = DropFlag(d);
                        // Parked inside `with`: killed here.
                        sylvan::sleep(Duration::from_secs(60));
                        seen.borrow().len()
                    })
                })
            })
            .collect();
        sylvan::sleep(Duration::from_millis(2));
        for (i, g) in gs.iter().enumerate() {
            if i % 2 == 0 {
                g.kill();
            }
        }
        assert_eq!(drops.get(), 25);
        sylvan::killall(&gs, Some(Duration::from_secs(2))).unwrap();
        assert_eq!(drops.get(), 50);
        assert_eq!(sylvan::stats().alive, 0);
        // Main's own value is untouched by all that.
        assert!(DROPS_SEEN.with(|d| d.borrow().is_empty()));
    });
}

// ----- handles dropped at odd moments --------------------------------------

/// A greenlet's only handle, reached through an `Rc` cycle, is dropped by
/// its own link callback; the callback still sees the value, and the value
/// is dropped exactly once.
#[test]
fn a_greenlet_dropped_by_its_own_link_callback() {
    bounded(|| {
        let drops = Rc::new(Cell::new(0));
        let slot: Rc<RefCell<Option<sylvan::Greenlet<DropFlag>>>> = Rc::default();
        let d = drops.clone();
        let g = sylvan::spawn(move || {
            sylvan::yield_now();
            DropFlag(d)
        });
        let (s2, s3) = (slot.clone(), slot.clone());
        let seen = Rc::new(Cell::new(None));
        let seen2 = seen.clone();
        g.link(move |o| {
            // Drop the handle while the outcome is borrowed.
            let handle = s2.borrow_mut().take();
            drop(handle);
            if let sylvan::Outcome::Returned(v) = o {
                seen2.set(Some(v.0.get()));
            }
        });
        g.link(move |_| assert!(s3.borrow().is_none()));
        *slot.borrow_mut() = Some(g);
        sylvan::sleep(Duration::from_millis(3));
        assert_eq!(seen.get(), Some(0), "the callback saw the value alive");
        assert_eq!(drops.get(), 1);
        assert_eq!(sylvan::stats().alive, 0);
    });
}

/// A `Pool` whose last owner is one of its members: the member drops it and
/// goes on; the other members finish normally.
#[test]
fn a_pool_dropped_by_one_of_its_members() {
    bounded(|| {
        let done = Rc::new(Cell::new(0));
        let slot: Rc<RefCell<Option<sylvan::pool::Pool>>> =
            Rc::new(RefCell::new(Some(sylvan::pool::Pool::new(3))));
        let mut members = Vec::new();
        for i in 0..3 {
            let (s, d) = (slot.clone(), done.clone());
            let pool = slot.borrow();
            members.push(pool.as_ref().unwrap().spawn(move || {
                sylvan::sleep(Duration::from_millis(1 + i));
                if i == 0 {
                    drop(s.borrow_mut().take());
                }
                sylvan::sleep(Duration::from_millis(2));
                d.set(d.get() + 1);
                i
            }));
        }
        let got: Vec<u64> = members.into_iter().map(|g| g.join().unwrap()).collect();
        assert_eq!(got, [0, 1, 2]);
        assert_eq!(done.get(), 3);
        assert!(slot.borrow().is_none());
    });
}

/// Thousands of greenlets killed at once while each holds a semaphore
/// permit, a mutex and a greenlet-local: every guard is released once.
#[test]
fn thousands_killed_while_holding_guards_release_them_all() {
    bounded(|| {
        let sem = Rc::new(sylvan::sync::Semaphore::new(5000));
        let mutexes: Rc<Vec<sylvan::sync::Mutex<u32>>> =
            Rc::new((0..3000).map(|_| sylvan::sync::Mutex::new(0)).collect());
        let drops = Rc::new(Cell::new(0));
        let gs: Vec<_> = (0..3000usize)
            .map(|i| {
                let (sem, m, d) = (sem.clone(), mutexes.clone(), drops.clone());
                sylvan::spawn(move || {
                    let _p = sem.acquire();
                    let mut g = m[i].lock();
                    *g += 1;
                    let _f = DropFlag(d);
                    DROPS_SEEN.with(|v| v.borrow_mut().push(String::new()));
                    sylvan::sleep(Duration::from_secs(60));
                })
            })
            .collect();
        sylvan::sleep(Duration::from_millis(5));
        assert_eq!(sem.available(), 2000);
        sylvan::killall(&gs, None).unwrap();
        assert_eq!(drops.get(), 3000);
        assert_eq!(sem.available(), 5000);
        assert!(mutexes.iter().all(|m| !m.is_locked() && *m.lock() == 1));
        assert_eq!(sylvan::stats().alive, 0);
    });
}

// ----- the smallest stacks through sylvan's own paths ----------------------

/// A greenlet of the smallest accepted stack (`MIN_STACK_SIZE`, "room to
/// unwind") that panics, is killed, and has a timeout expire: sylvan's own
/// paths on that stack (the panic hook recording the site, the unwind, the
/// kill and timeout throws) fit. With `RUST_BACKTRACE=1` the hook also
/// captures and formats a backtrace on the greenlet's stack.
fn smallest_stack_paths() {
    let small = || {
        sylvan::Builder::new()
            .name("tiny")
            .stack_size(sylvan::MIN_STACK_SIZE)
    };
    quiet();
    let p = small().spawn(|| panic!("p23 tiny panic")).unwrap();
    let e = p.join().unwrap_err();
    assert_eq!(e.panic().map(|p| p.message()), Some("p23 tiny panic"));
    let k = small()
        .spawn(|| sylvan::sleep(Duration::from_secs(60)))
        .unwrap();
    sylvan::sleep(Duration::from_millis(1));
    k.kill();
    assert!(k.join().unwrap_err().is_killed());
    let t = small()
        .spawn(|| {
            sylvan::with_timeout(Duration::from_millis(1), || {
                sylvan::sleep(Duration::from_secs(60))
            })
            .is_err()
        })
        .unwrap();
    assert!(t.join().unwrap());
    let mut bt = false;
    let l = small()
        .spawn(|| {
            let r = std::panic::catch_unwind(|| panic!("p23 caught"));
            r.is_err()
        })
        .unwrap();
    assert!(l.join().unwrap());
    if std::env::var_os("RUST_BACKTRACE").is_some() {
        bt = e.panic().and_then(|p| p.backtrace()).is_some();
    }
    println!("CHILD backtrace={bt}");
}

#[test]
fn the_smallest_stack_fits_sylvans_panic_kill_and_timeout_paths() {
    const NAME: &str = "p23-tiny";
    if is_child(NAME) {
        bounded(smallest_stack_paths);
        println!("PROBE ok");
        return;
    }
    let out = run_child_limited(
        "probes23::the_smallest_stack_fits_sylvans_panic_kill_and_timeout_paths",
        NAME,
        &[],
        Duration::from_secs(20),
    )
    .expect("hung");
    let (stdout, stderr) = texts(&out);
    assert!(
        out.status.success() && stdout.contains("PROBE ok"),
        "{:?}\n{stdout}\n{stderr}",
        out.status
    );
}

/// The same with `RUST_BACKTRACE=1`: the doc promises the report carries
/// "the backtrace when `RUST_BACKTRACE` asks", and `MIN_STACK_SIZE` is the
/// smallest accepted size. The capture and its formatting run in the panic
/// hook, on the panicking greenlet's stack.
#[test]
fn the_smallest_stack_fits_a_panic_with_rust_backtrace() {
    const NAME: &str = "p23-tiny-bt";
    if is_child(NAME) {
        bounded(smallest_stack_paths);
        println!("PROBE ok");
        return;
    }
    let out = run_child_limited(
        "probes23::the_smallest_stack_fits_a_panic_with_rust_backtrace",
        NAME,
        &[("RUST_BACKTRACE", "1")],
        Duration::from_secs(60),
    )
    .expect("hung");
    let (stdout, stderr) = texts(&out);
    assert!(
        out.status.success() && stdout.contains("PROBE ok"),
        "{:?}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("CHILD backtrace=true"), "{stdout}");
}

/// Recursion close to the guard page, then a kill: the greenlet parks deep
/// in its stack, and the kill's unwind runs from there.
#[test]
fn a_greenlet_parked_deep_in_a_small_stack_is_killed_cleanly() {
    bounded(|| {
        #[inline(never)]
        fn deep(n: u32, drops: &Rc<Cell<u32>>) -> u32 {
            let _f = DropFlag(drops.clone());
            let pad = std::hint::black_box([n as u8; 256]);
            if n == 0 {
                sylvan::sleep(Duration::from_secs(60));
                return 0;
            }
            deep(n - 1, drops) + u32::from(pad[7])
        }
        let drops = Rc::new(Cell::new(0));
        let d = drops.clone();
        let g = sylvan::Builder::new()
            .stack_size(64 << 10)
            .spawn(move || deep(40, &d))
            .unwrap();
        sylvan::sleep(Duration::from_millis(2));
        g.kill();
        assert!(g.join().unwrap_err().is_killed());
        assert_eq!(drops.get(), 41);
    });
}

// ----- values sent to other threads -----------------------------------------

/// Whether `T: Send`, asked without a generic bound (inherent associated
/// consts win over the trait's when the bound holds).
struct Probe<T: ?Sized>(std::marker::PhantomData<T>);
trait NotSend {
    const SEND: bool = false;
}
impl<T: ?Sized> NotSend for Probe<T> {}
impl<T: ?Sized + Send> Probe<T> {
    const SEND: bool = true;
}
struct SyncProbe<T: ?Sized>(std::marker::PhantomData<T>);
trait NotSync {
    const SYNC: bool = false;
}
impl<T: ?Sized> NotSync for SyncProbe<T> {}
impl<T: ?Sized + Sync> SyncProbe<T> {
    const SYNC: bool = true;
}

/// The auto traits the docs promise: hub-bound handles, sockets and
/// guards are `!Send`, what crosses threads is `Send`. (Not checked here:
/// `sync::Event`, `Queue`, `Mutex<T>` and `Semaphore` are `Send` when their
/// items are, though `sync`'s docs call them `!Send`; they are `!Sync`, and
/// a waiter borrows the primitive while it is registered, so a move to
/// another thread carries no hub state with it.)
#[test]
fn hub_bound_types_are_not_send_and_cross_thread_ones_are() {
    use sylvan::sync::{Event, Mutex, MutexGuard, Queue, SemaphoreGuard};
    let not_send = [
        ("Greenlet", Probe::<sylvan::Greenlet<u8>>::SEND),
        ("Mutex<Rc>", Probe::<Mutex<Rc<u8>>>::SEND),
        ("Queue<Rc>", Probe::<Queue<Rc<u8>>>::SEND),
        ("MutexGuard", Probe::<MutexGuard<'static, u8>>::SEND),
        ("SemaphoreGuard", Probe::<SemaphoreGuard<'static>>::SEND),
        ("Pool", Probe::<sylvan::pool::Pool>::SEND),
        ("TcpStream", Probe::<sylvan::net::TcpStream>::SEND),
        ("Fd", Probe::<sylvan::os::Fd<std::fs::File>>::SEND),
        ("SignalHandler", Probe::<sylvan::SignalHandler>::SEND),
        ("Iwait", Probe::<sylvan::Iwait<'static>>::SEND),
        ("Timeout", Probe::<sylvan::Timeout>::SEND),
    ];
    let sent: Vec<_> = not_send
        .iter()
        .filter(|(_, s)| *s)
        .map(|(n, _)| *n)
        .collect();
    assert!(sent.is_empty(), "Send but bound to a hub: {sent:?}");
    let sync = [
        ("Event", SyncProbe::<Event>::SYNC),
        ("Mutex", SyncProbe::<Mutex<u8>>::SYNC),
        ("Greenlet", SyncProbe::<sylvan::Greenlet<u8>>::SYNC),
    ];
    let shared: Vec<_> = sync.iter().filter(|(_, s)| *s).map(|(n, _)| *n).collect();
    assert!(shared.is_empty(), "Sync but bound to a hub: {shared:?}");
    assert!(
        [SyncProbe::<sylvan::Elapsed>::SYNC].iter().all(|&s| s),
        "Elapsed is Sync"
    );
    let send = [
        ("Handle", Probe::<sylvan::Handle>::SEND),
        ("KeepAlive", Probe::<sylvan::KeepAlive>::SEND),
        ("mpsc::Sender", Probe::<sylvan::mpsc::Sender<u8>>::SEND),
        ("Error", Probe::<sylvan::Error>::SEND),
        ("Elapsed", Probe::<sylvan::Elapsed>::SEND),
    ];
    let not: Vec<_> = send.iter().filter(|(_, s)| !*s).map(|(n, _)| *n).collect();
    assert!(not.is_empty(), "meant to cross threads but !Send: {not:?}");
}
