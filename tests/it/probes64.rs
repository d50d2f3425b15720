//! Hostile review of three commits:
//! * 633f40e: a signal handler's panic is reported, then raised in main
//!   (not for `SIGCHLD`);
//! * ea90d8f: dropping the last `StreamServer` handle shuts the listening
//!   socket down at once (a weak `ListenerCloser`);
//! * a51db21: a join's untaken failure waits for callbacks still to come; a
//!   `Custom` policy replaced while it ran is dropped in a greenlet.
//!
//! Signals are raised only inside re-executed child processes. 20 tests; 2
//! BUGs found, fixed since (s03, s16: one cause, `Hub::raise_in_main_now`
//! dropped a throw queued for main; it now defers it).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sylvan::net::{StreamServer, TcpListener};
use sylvan::sync::Mutex;
use sylvan::{ErrorPolicy, Timeout, sleep, spawn, yield_now};

use crate::util::{child_texts, in_child, limited_child_texts, wait_for};

const MS: Duration = Duration::from_millis(1);

fn raise(sig: i32) {
    // SAFETY: raises a signal handled by a `sylvan::signal` registration,
    // in a child process.
    unsafe { libc::raise(sig) };
}

fn msg(p: &(dyn Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "<non-string>".into())
}

/// Runs `f` (a blocking call of main) and returns the message of the panic
/// it unwound with; panics if it returned.
fn raised<T>(f: impl FnOnce() -> T) -> String {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(_) => panic!("main's call returned: the handler's panic was not raised in it"),
        Err(p) => msg(&*p),
    }
}

/// Counts reports (a quiet `Custom` policy).
fn counting() -> Rc<Cell<u32>> {
    let n = Rc::new(Cell::new(0));
    let c = n.clone();
    sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |_| c.set(c.get() + 1))));
    n
}

// ------------------------------------------------------------ 633f40e

/// Main waits for a `Mutex`; the handler drops the holder's guard (handing
/// the lock to main) and panics in the same turn. Main unwinds from `lock`,
/// and the lock it was handed passes on to the next waiter.
#[test]
fn s01_mutex_handed_to_main_passes_on_when_the_raise_unwinds_it() {
    in_child(
        "probes64::s01_mutex_handed_to_main_passes_on_when_the_raise_unwinds_it",
        "p64-s01",
        || {
            let _n = counting();
            let m: &'static Mutex<u32> = Box::leak(Box::new(Mutex::new(0)));
            let held = Rc::new(RefCell::new(Some(m.lock())));
            let h2 = held.clone();
            let _h = sylvan::signal(libc::SIGUSR1, move || {
                h2.borrow_mut().take();
                panic!("s01");
            })
            .unwrap();
            let got = Rc::new(Cell::new(false));
            let g2 = got.clone();
            let c = spawn(move || {
                let mut g = m.lock();
                *g += 1;
                g2.set(true);
            });
            raise(libc::SIGUSR1);
            assert_eq!(raised(|| m.lock()), "s01");
            assert!(
                wait_for(Duration::from_secs(2), || got.get()),
                "the next waiter never got the lock"
            );
            c.join().unwrap();
            assert_eq!(*m.lock(), 1, "main can lock again");
        },
    );
}

/// A `Timeout` main armed fires in the same turn as the handler's panic is
/// raised, and the handler runs first: main unwinds with the handler's
/// panic, but the timeout, due and not yet thrown, must still be thrown
/// later (a timeout is thrown once, never lost: with a kill queued it is
/// deferred; in gevent its timer callback throws into main after).
#[test]
fn s03_a_timeout_fired_in_the_same_turn_is_not_lost() {
    in_child(
        "probes64::s03_a_timeout_fired_in_the_same_turn_is_not_lost",
        "p64-s03",
        || {
            let _n = counting();
            let _h = sylvan::signal(libc::SIGUSR1, || {
                // Parks on a timer due before main's timeout; meanwhile a
                // greenlet stalls the hub past both, so one turn fires the
                // handler's timer, then main's timeout.
                spawn(|| std::thread::sleep(60 * MS));
                sleep(5 * MS);
                panic!("s03");
            })
            .unwrap();
            let t = Timeout::start(30 * MS);
            raise(libc::SIGUSR1);
            assert_eq!(raised(|| sleep(Duration::from_secs(1))), "s03");
            let start = Instant::now();
            let r = catch_unwind(AssertUnwindSafe(|| sleep(500 * MS)));
            match r {
                Ok(()) => panic!(
                    "the expired timeout was never thrown (sleep ran {:?}; is_pending={})",
                    start.elapsed(),
                    t.is_pending()
                ),
                Err(p) => assert!(t.is_own_payload(&*p), "unwound with {}", msg(&*p)),
            }
        },
    );
}

/// The same turn as in s03, with `with_timeout` around a call that catches
/// the handler's panic and goes on: the expired deadline is never thrown,
/// and `with_timeout` runs its body past it, to the end.
#[test]
fn s16_with_timeout_deadline_of_the_same_turn_is_not_lost() {
    in_child(
        "probes64::s16_with_timeout_deadline_of_the_same_turn_is_not_lost",
        "p64-s16",
        || {
            let _n = counting();
            let _h = sylvan::signal(libc::SIGUSR1, || {
                spawn(|| std::thread::sleep(60 * MS));
                sleep(5 * MS);
                panic!("s16");
            })
            .unwrap();
            let start = Instant::now();
            let r = sylvan::with_timeout(30 * MS, || {
                raise(libc::SIGUSR1);
                let m = raised(|| sleep(Duration::from_secs(1)));
                assert_eq!(m, "s16");
                sleep(600 * MS);
            });
            assert!(
                r.is_err(),
                "with_timeout(30 ms) returned Ok after {:?}",
                start.elapsed()
            );
        },
    );
}

/// Main in `spawn_blocking`: the raise unwinds it at once (not after the
/// thread's job), and the thread pool works afterwards.
#[test]
fn s04_spawn_blocking_is_cut_short_and_the_pool_still_works() {
    in_child(
        "probes64::s04_spawn_blocking_is_cut_short_and_the_pool_still_works",
        "p64-s04",
        || {
            let _n = counting();
            let _h = sylvan::signal(libc::SIGUSR1, || panic!("s04")).unwrap();
            raise(libc::SIGUSR1);
            let start = Instant::now();
            assert_eq!(
                raised(
                    || sylvan::spawn_blocking(|| std::thread::sleep(Duration::from_millis(800)))
                ),
                "s04"
            );
            assert!(
                start.elapsed() < 500 * MS,
                "waited for the job: {:?}",
                start.elapsed()
            );
            assert_eq!(sylvan::spawn_blocking(|| 41 + 1), 42);
        },
    );
}

/// `with_timeout` around main's call passes the handler's panic through
/// (not an `Elapsed`), and a later `with_timeout` still times out.
#[test]
fn s06_with_timeout_passes_the_raise_through() {
    in_child(
        "probes64::s06_with_timeout_passes_the_raise_through",
        "p64-s06",
        || {
            let _n = counting();
            let _h = sylvan::signal(libc::SIGUSR1, || panic!("s06")).unwrap();
            raise(libc::SIGUSR1);
            assert_eq!(
                raised(|| sylvan::with_timeout(Duration::from_secs(2), || sleep(
                    Duration::from_secs(3)
                ))),
                "s06"
            );
            assert!(sylvan::with_timeout(20 * MS, || sleep(Duration::from_secs(1))).is_err());
        },
    );
}

/// Main in `wait_all` and in `iwait`: both unwind with the raise, and work
/// again afterwards.
#[test]
fn s07_wait_all_and_iwait_unwind_and_work_again() {
    in_child(
        "probes64::s07_wait_all_and_iwait_unwind_and_work_again",
        "p64-s07",
        || {
            let _n = counting();
            let _h = sylvan::signal(libc::SIGUSR1, || panic!("s07")).unwrap();
            let g = spawn(|| sleep(300 * MS));
            raise(libc::SIGUSR1);
            assert_eq!(
                raised(|| sylvan::wait_all(Some(Duration::from_secs(2)))),
                "s07"
            );
            assert!(!g.is_dead());
            raise(libc::SIGUSR1);
            assert_eq!(
                raised(|| {
                    let objs: [&dyn sylvan::Waitable; 1] = [&g];
                    sylvan::iwait(&objs, Some(Duration::from_secs(2))).count()
                }),
                "s07"
            );
            let objs: [&dyn sylvan::Waitable; 1] = [&g];
            assert_eq!(
                sylvan::iwait(&objs, Some(Duration::from_secs(2))).count(),
                1
            );
            assert!(g.join().is_ok());
            let start = Instant::now();
            // Only `bounded`'s timer is left: this wait runs to its deadline.
            assert!(!sylvan::wait_all(Some(30 * MS)));
            assert!(start.elapsed() >= 30 * MS);
        },
    );
}

/// Two handlers panic before main runs: both are reported, and both are
/// raised in main in turn, the second at main's next blocking call (as
/// gevent throws each handler's exception into main; until 06850cf the
/// second was dropped). After them, a sleep runs to its end.
#[test]
fn s08_two_panics_before_main_runs_both_reported_and_raised_in_turn() {
    in_child(
        "probes64::s08_two_panics_before_main_runs_both_reported_and_raised_in_turn",
        "p64-s08",
        || {
            let n = counting();
            let _a = sylvan::signal(libc::SIGUSR1, || panic!("s08 a")).unwrap();
            let _b = sylvan::signal(libc::SIGUSR2, || panic!("s08 b")).unwrap();
            raise(libc::SIGUSR1);
            raise(libc::SIGUSR2);
            let first = raised(|| sleep(Duration::from_secs(1)));
            assert_eq!(n.get(), 2, "both reported");
            let start = Instant::now();
            let second = raised(|| sleep(Duration::from_secs(1)));
            assert!(
                start.elapsed() < Duration::from_millis(500),
                "{:?}",
                start.elapsed()
            );
            let mut both = [first, second];
            both.sort();
            assert_eq!(both, ["s08 a", "s08 b"]);
            let start = Instant::now();
            sleep(100 * MS);
            assert!(start.elapsed() >= 100 * MS);
        },
    );
}

/// A hub on a spawned std thread: the handler registered there panics, and
/// that thread's main greenlet (its own code) gets the raise.
#[test]
fn s09_hub_on_a_std_thread_raises_in_that_threads_main() {
    in_child(
        "probes64::s09_hub_on_a_std_thread_raises_in_that_threads_main",
        "p64-s09",
        || {
            let t = std::thread::spawn(|| {
                sylvan::with_timeout(Duration::from_secs(3), || {
                    let _n = counting();
                    let _h = sylvan::signal(libc::SIGUSR2, || panic!("s09")).unwrap();
                    raise(libc::SIGUSR2);
                    raised(|| sleep(Duration::from_secs(2)))
                })
                .expect("thread hung")
            });
            let m = sylvan::spawn_blocking(move || t.join().unwrap());
            assert_eq!(m, "s09");
        },
    );
}

/// A non-string payload is raised as it is, and the default policy's report
/// is printed once; nothing more is printed for the raise.
#[test]
fn s10_non_string_payload_raised_as_is_and_printed_once() {
    let Some((_, err)) = child_texts(
        "probes64::s10_non_string_payload_raised_as_is_and_printed_once",
        "p64-s10",
        || {
            let _h = sylvan::signal(libc::SIGUSR1, || std::panic::panic_any(4242u32)).unwrap();
            raise(libc::SIGUSR1);
            let p = catch_unwind(AssertUnwindSafe(|| sleep(Duration::from_secs(1))))
                .expect_err("raised in main");
            assert_eq!(p.downcast_ref::<u32>(), Some(&4242));
        },
    ) else {
        return;
    };
    let reports = err.matches("signal 10").count();
    assert_eq!(reports, 1, "stderr:\n{err}");
}

/// Under `IgnoreObserved` (the handler's greenlet has no observer) the
/// failure is printed once, then raised; the raise prints nothing more.
#[test]
fn s14_ignore_observed_prints_once_then_raises() {
    let Some((_, err)) = child_texts(
        "probes64::s14_ignore_observed_prints_once_then_raises",
        "p64-s14",
        || {
            sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
            let _h = sylvan::signal(libc::SIGUSR1, || panic!("s14 boom")).unwrap();
            raise(libc::SIGUSR1);
            assert_eq!(raised(|| sleep(Duration::from_secs(1))), "s14 boom");
        },
    ) else {
        return;
    };
    assert_eq!(err.matches("s14 boom").count(), 1, "stderr:\n{err}");
}

/// A handler that unwinds with a kill payload ends as killed, not failed:
/// nothing is reported and nothing raised in main (sylvan's reading; gevent
/// would throw its GreenletExit into main).
#[test]
fn s11_kill_payload_from_a_handler_is_neither_reported_nor_raised() {
    in_child(
        "probes64::s11_kill_payload_from_a_handler_is_neither_reported_nor_raised",
        "p64-s11",
        || {
            let n = counting();
            let ran = Rc::new(Cell::new(false));
            let r2 = ran.clone();
            let _h = sylvan::signal(libc::SIGUSR1, move || {
                r2.set(true);
                std::panic::resume_unwind(Box::new(sylvan::GreenletExit))
            })
            .unwrap();
            raise(libc::SIGUSR1);
            let start = Instant::now();
            sleep(150 * MS);
            assert!(start.elapsed() >= 150 * MS);
            assert!(ran.get());
            assert_eq!(n.get(), 0);
        },
    );
}

/// A `SIGCHLD` handler's panic is reported, not raised: main's sleep is
/// whole.
#[test]
fn s12_sigchld_handler_panic_is_reported_only() {
    in_child(
        "probes64::s12_sigchld_handler_panic_is_reported_only",
        "p64-s12",
        || {
            let n = counting();
            let _h = sylvan::signal(libc::SIGCHLD, || panic!("s12")).unwrap();
            raise(libc::SIGCHLD);
            let start = Instant::now();
            sleep(150 * MS);
            assert!(start.elapsed() >= 150 * MS);
            assert_eq!(n.get(), 1);
        },
    );
}

/// A handler's panic pending when main's body ends, with main never parked
/// again, does not crash the thread's exit (and nothing panics at teardown).
#[test]
fn s13_panic_while_main_finishes_does_not_break_exit() {
    let Some((_, err)) = limited_child_texts(
        "probes64::s13_panic_while_main_finishes_does_not_break_exit",
        "p64-s13",
        &[],
        Duration::from_secs(10),
        || {
            let t = std::thread::spawn(|| {
                let _n = counting();
                let h = sylvan::signal(libc::SIGUSR2, || panic!("s13")).unwrap();
                // The handler runs at the thread's exit (its hub's last
                // turns), if at all: main's body has ended.
                std::mem::forget(h);
                raise(libc::SIGUSR2);
                spawn(|| sleep(30 * MS));
            });
            t.join().expect("the thread's exit panicked");
        },
    ) else {
        return;
    };
    assert!(!err.contains("panicked"), "stderr:\n{err}");
}

// ------------------------------------------------------------ ea90d8f

fn refused(addr: std::net::SocketAddr) -> bool {
    matches!(std::net::TcpStream::connect(addr), Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
}

/// The last handle dropped right after start (the accept loop never ran): a
/// connect is refused at once, and one queued before the drop is reset,
/// without the handler ever running.
#[test]
fn n01_drop_before_the_loop_ran_refuses_and_resets_queued() {
    in_child(
        "probes64::n01_drop_before_the_loop_ran_refuses_and_resets_queued",
        "p64-n01",
        || {
            let runs = Rc::new(Cell::new(0));
            let r2 = runs.clone();
            let s = StreamServer::bind("127.0.0.1:0", move |_c, _p| r2.set(r2.get() + 1))
                .unwrap()
                .start()
                .unwrap();
            let addr = s.local_addr().unwrap();
            let mut queued = std::net::TcpStream::connect(addr).unwrap();
            drop(s);
            assert!(refused(addr), "a connect after the drop got through");
            queued
                .set_read_timeout(Some(Duration::from_secs(1)))
                .unwrap();
            let mut b = [0u8; 1];
            match queued.read(&mut b) {
                Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
                Ok(n) => panic!("queued connection read {n} bytes instead of a reset"),
            }
            sleep(20 * MS);
            assert_eq!(runs.get(), 0);
        },
    );
}

/// A handler holding the last handle drops it: new connects are refused,
/// and the handler itself finishes on its own.
#[test]
fn n02_handler_dropping_the_last_handle_refuses_and_finishes() {
    in_child(
        "probes64::n02_handler_dropping_the_last_handle_refuses_and_finishes",
        "p64-n02",
        || {
            let slot: Rc<RefCell<Option<StreamServer>>> = Rc::new(RefCell::new(None));
            let done = Rc::new(Cell::new(false));
            let (s2, d2) = (slot.clone(), done.clone());
            let s = StreamServer::bind("127.0.0.1:0", move |_c, _p| {
                drop(s2.borrow_mut().take());
                sleep(20 * MS);
                d2.set(true);
            })
            .unwrap()
            .start()
            .unwrap();
            let addr = s.local_addr().unwrap();
            *slot.borrow_mut() = Some(s);
            let _c = sylvan::net::TcpStream::connect(addr).unwrap();
            assert!(wait_for(Duration::from_secs(2), || slot.borrow().is_none()));
            assert!(refused(addr));
            assert!(
                wait_for(Duration::from_secs(2), || done.get()),
                "the handler was cut short"
            );
        },
    );
}

/// After `stop`, another listener may take the old descriptor number; the
/// drop of the last handle must not shut that one down.
#[test]
fn n03_drop_after_stop_leaves_a_listener_on_the_reused_fd_alone() {
    in_child(
        "probes64::n03_drop_after_stop_leaves_a_listener_on_the_reused_fd_alone",
        "p64-n03",
        || {
            use std::os::fd::AsRawFd;
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let fd = l.as_raw_fd();
            let s = StreamServer::new(l, |_c, _p| {}).start().unwrap();
            yield_now();
            s.stop(None);
            sleep(5 * MS);
            let other = TcpListener::bind("127.0.0.1:0").unwrap();
            let reused = other.as_raw_fd() == fd;
            let oaddr = other.local_addr().unwrap();
            drop(s);
            let c = std::net::TcpStream::connect(oaddr);
            assert!(
                c.is_ok(),
                "fd reused={reused}: the other listener was shut down"
            );
            let (_a, _) = other.accept().unwrap();
        },
    );
}

/// A server with a full pool (its accept loop waits for a slot): dropping
/// the last handle refuses new connects; the running handler finishes.
#[test]
fn n04_drop_with_a_full_pool_refuses_and_handlers_finish() {
    in_child(
        "probes64::n04_drop_with_a_full_pool_refuses_and_handlers_finish",
        "p64-n04",
        || {
            let done = Rc::new(Cell::new(0));
            let d2 = done.clone();
            let s = StreamServer::bind("127.0.0.1:0", move |_c, _p| {
                sleep(100 * MS);
                d2.set(d2.get() + 1);
            })
            .unwrap()
            .with_pool(sylvan::pool::Pool::new(1))
            .start()
            .unwrap();
            let addr = s.local_addr().unwrap();
            let _c1 = sylvan::net::TcpStream::connect(addr).unwrap();
            let _c2 = sylvan::net::TcpStream::connect(addr).unwrap();
            assert!(wait_for(Duration::from_secs(2), || s.handlers() == 1));
            sleep(10 * MS);
            drop(s);
            assert!(refused(addr));
            assert!(wait_for(Duration::from_secs(2), || done.get() >= 1));
        },
    );
}

/// Main in `stop` waiting for a running handler is cut short by a signal
/// handler's panic; a second `stop` finishes the job (kills the handler)
/// and connects are refused.
#[test]
fn n07_stop_cut_short_by_the_raise_then_stop_again() {
    in_child(
        "probes64::n07_stop_cut_short_by_the_raise_then_stop_again",
        "p64-n07",
        || {
            let _n = counting();
            let _h = sylvan::signal(libc::SIGUSR1, || panic!("n07")).unwrap();
            let s = StreamServer::bind("127.0.0.1:0", |_c, _p| sleep(Duration::from_secs(3)))
                .unwrap()
                .start()
                .unwrap();
            let addr = s.local_addr().unwrap();
            let _c = sylvan::net::TcpStream::connect(addr).unwrap();
            assert!(wait_for(Duration::from_secs(2), || s.handlers() == 1));
            raise(libc::SIGUSR1);
            assert_eq!(raised(|| s.stop(None)), "n07");
            assert!(
                refused(addr),
                "the cut-short stop left the socket listening"
            );
            let start = Instant::now();
            s.stop(Some(Duration::ZERO));
            assert!(start.elapsed() < Duration::from_secs(1));
            assert_eq!(s.handlers(), 0);
            assert!(s.is_stopped());
        },
    );
}

// ------------------------------------------------------------ a51db21

struct PanicOnDrop;
impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("p01 capture drop");
    }
}

/// A `Custom` policy replaces itself from inside its call, and one of its
/// captures panics on drop: the drop greenlet's panic is reported by the
/// new policy; nothing aborts.
#[test]
fn p01_replaced_policy_whose_capture_panics_on_drop() {
    in_child(
        "probes64::p01_replaced_policy_whose_capture_panics_on_drop",
        "p64-p01",
        || {
            let seen: Rc<RefCell<Vec<String>>> = Rc::new(RefCell::new(Vec::new()));
            let s2 = seen.clone();
            let cap = PanicOnDrop;
            sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |_f| {
                let _keep = &cap;
                let s3 = s2.clone();
                sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |f| {
                    s3.borrow_mut().push(format!("{f}"));
                })));
            })));
            let g = spawn(|| panic!("p01 first"));
            let _ = catch_unwind(AssertUnwindSafe(|| sleep(20 * MS)));
            assert!(g.is_dead());
            assert!(wait_for(Duration::from_secs(1), || !seen
                .borrow()
                .is_empty()));
            let s = seen.borrow();
            assert_eq!(s.len(), 1, "{s:?}");
            assert!(s[0].contains("p01 capture drop"), "{s:?}");
        },
    );
}

struct SlowDrop(Arc<AtomicBool>, Arc<AtomicBool>);
impl Drop for SlowDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
        sleep(100 * MS);
        self.1.store(true, Ordering::SeqCst);
    }
}

/// A replaced `Custom` policy whose capture blocks (parks) on drop, dropped
/// as a hub thread exits: the thread exits, and the destructor ran, parking
/// allowed.
#[test]
fn p02_replaced_policy_with_blocking_drop_at_thread_exit() {
    in_child(
        "probes64::p02_replaced_policy_with_blocking_drop_at_thread_exit",
        "p64-p02",
        || {
            let started = Arc::new(AtomicBool::new(false));
            let ended = Arc::new(AtomicBool::new(false));
            let (a, b) = (started.clone(), ended.clone());
            let t = std::thread::spawn(move || {
                let cap = SlowDrop(a, b);
                sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |_f| {
                    let _keep = &cap;
                    sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(|_| {})));
                })));
                let g = spawn(|| panic!("p02"));
                yield_now();
                assert!(g.is_dead());
            });
            let start = Instant::now();
            sylvan::spawn_blocking(move || t.join()).expect("thread exit panicked");
            assert!(
                started.load(Ordering::SeqCst),
                "the capture was never dropped"
            );
            assert!(
                ended.load(Ordering::SeqCst),
                "the capture's drop was cut short"
            );
            assert!(start.elapsed() < Duration::from_secs(2));
        },
    );
}
