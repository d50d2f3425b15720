//! Hostile review of 1f3322f (`take_notified` clears a token before its
//! `unwatch`; `unregister` calls every `unwatch` under `catch_unwind` and
//! raises the first panic unless already unwinding), bd5e265 (each crawler
//! fetch leases a slot of one of several ureq agents, the slots adding up
//! to `--concurrency`) and 69d1caa (a `Timeout` escaping a signal handler
//! is reported, then raised in main as `Elapsed`).
//!
//! * wait: a kill (wt03) or a `Timeout` (wt04) while parked with
//!   `unwatch`es that always panic: no abort, each token unwatched once,
//!   nothing left registered, a kill no failure, `with_timeout` gets its
//!   own expiry; `wait` with its count reached raises the `unwatch` panic
//!   of the unreported object after taking the others back (wt05). Holds.
//!   BUG (wt01): an `unwatch` panic out of `next` leaves that object
//!   unregistered, unqueued and unreported; the iterator used again never
//!   reports it (parks to the deadline, `None`). BUG (wt02): a `watch`
//!   panic whose undo meets a panicking `unwatch` surfaces as the
//!   `unwatch`'s panic, the first (the `watch`'s) dropped.
//! * crawler: at `-c` 1, 7, 8, 9, 17, 64 with slow pages timing out
//!   (`--timeout 0.25`, one retry each) and a slow robots.txt: never more
//!   connections open at once than `--concurrency` (9 at -c 9), no more
//!   made than `--concurrency` plus one per timed-out attempt, no slot
//!   leak slowing the crawl (cr01). Holds.
//! * signal: main in its own `with_timeout` gets the handler's `Elapsed`
//!   as a panic, its own timer withdrawn (sg01); main parked in a join,
//!   `iwait`, `wait_all`, a socket read, `spawn_blocking` gets it, each
//!   left usable (sg02); a handler panic then a handler timeout are raised
//!   in turn (sg04); SIGCHLD only reports; another thread's hub raises in
//!   its own main only (sg05). Holds. BUG (sg03): of two handler failures
//!   in one turn only the first is raised in main (`raise_in_main` drops
//!   the second); gevent raises each, the second at main's next block.
//!
//! 11 tests, 3 BUGs (wt01, wt02, sg03), all fixed: a panicking `unwatch`
//! in `take_notified` takes every registration back, as a panicking
//! `watch` does (the iterator used again registers anew); the undo raises
//! the `watch`'s panic and drops the `unwatch`'s; main takes its raised
//! failures from a queue, one per blocking call.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::{Duration, Instant};

use sylvan::sync::Event;
use sylvan::{ErrorPolicy, Waitable, Waiter, spawn, yield_now};

use crate::util::{bounded, in_child, quiet};

const MS: Duration = Duration::from_millis(1);

// ================================================================ wait

/// An object whose `unwatch` panics (the first call, or every call) and,
/// optionally, whose `watch` panics from its `panic_watch_from`th call on,
/// after recording; counts the calls per token.
#[derive(Default)]
struct Bad {
    up: Cell<bool>,
    unwatch_panics: Cell<usize>,
    panic_watch_from: Option<usize>,
    list: RefCell<Vec<(usize, Waiter)>>,
    watches: Cell<usize>,
    unwatched: RefCell<Vec<usize>>,
}

impl Bad {
    fn unwatch_panics(n: usize) -> Bad {
        let b = Bad::default();
        b.unwatch_panics.set(n);
        b
    }
    fn first(&self) -> Waiter {
        self.list.borrow().first().expect("watched").1
    }
    fn live(&self) -> usize {
        self.list.borrow().len()
    }
}

impl Waitable for Bad {
    fn is_ready(&self) -> bool {
        self.up.get()
    }
    fn watch(&self, w: Waiter) -> usize {
        let n = self.watches.get() + 1;
        self.watches.set(n);
        if self.panic_watch_from.is_some_and(|from| n >= from) {
            panic!("watch {n} panics");
        }
        self.list.borrow_mut().push((n, w));
        n
    }
    fn unwatch(&self, _w: Waiter, token: usize) {
        self.list.borrow_mut().retain(|&(t, _)| t != token);
        self.unwatched.borrow_mut().push(token);
        let left = self.unwatch_panics.get();
        if left > 0 {
            self.unwatch_panics.set(left - 1);
            panic!("unwatch of {token} panics");
        }
    }
}

fn message(p: &(dyn std::any::Any + Send)) -> String {
    sylvan::runtime::payload_message(p)
}

/// An `unwatch` made by `take_notified` panics out of `next` (after the
/// object became ready); the iterator is then used again, as
/// `undo_and_resume`'s docs say it may be after a panicking `watch`. The
/// ready object is never reported: its token was cleared before the
/// `unwatch` and its notice popped, so the next `next` skips it ("reported
/// already") and parks until the deadline, then ends with `None`.
/// Cause: `take_notified` lets the `unwatch` panic go with the iterator
/// still registered but the object neither registered, nor queued, nor
/// reported. Fix: on a panicking `unwatch` there, unregister everything
/// (as `undo_and_resume` does for `watch`), so that a later `next`
/// scans again; or keep the index as a candidate checked by readiness.
#[test]
fn wt01_iwait_used_again_after_an_unwatch_panic_reports_the_ready_object() {
    bounded(|| {
        let b = Rc::new(Bad::unwatch_panics(1));
        let ev = Rc::new(Event::new());
        let objs: [&dyn Waitable; 2] = [&*b, &*ev];
        let mut it = sylvan::iwait(&objs, Some(300 * MS));
        let b2 = b.clone();
        spawn(move || {
            b2.up.set(true);
            b2.first().wake();
        });
        let p = catch_unwind(AssertUnwindSafe(|| it.next())).expect_err("unwatch panics");
        assert!(message(&*p).contains("unwatch of 1"), "{}", message(&*p));
        assert!(b.is_ready());
        let t = Instant::now();
        let again = it.next();
        let waited = t.elapsed();
        drop(it);
        assert_eq!(*b.unwatched.borrow(), [1], "each token unwatched once");
        assert_eq!(ev.waiters(), 0);
        assert_eq!(
            again,
            Some(0),
            "the ready object, after {waited:?} (the deadline is 300 ms)"
        );
    })
}

/// `register`: object 0 is watched, then object 1's `watch` panics;
/// `undo_and_resume` unwatches object 0, whose `unwatch` panics too. The
/// first panic (the `watch`'s) should go on, as `unregister` keeps the
/// first of its own; instead `unregister` raises the `unwatch`'s from
/// inside `undo_and_resume`, and the `watch` panic is dropped by the
/// unwind (an ordinary drop, not `drop_payload`). Either way nothing
/// stays registered.
#[test]
fn wt02_a_watch_panic_is_the_one_raised_when_the_undo_panics_too() {
    bounded(|| {
        let a = Bad::unwatch_panics(1);
        let w = Bad {
            panic_watch_from: Some(1),
            ..Bad::default()
        };
        let objs: [&dyn Waitable; 2] = [&a, &w];
        let p = catch_unwind(AssertUnwindSafe(|| {
            sylvan::wait(&objs, Some(50 * MS), None)
        }))
        .expect_err("a panic");
        assert_eq!((a.live(), w.live()), (0, 0));
        assert_eq!(*a.unwatched.borrow(), [1]);
        assert_eq!(message(&*p), "watch 1 panics", "the first panic goes on");
    })
}

/// A kill thrown into a greenlet parked in `wait` whose objects' `unwatch`
/// panics every time: the drop during the kill's unwind drops those
/// panics (no abort), unwatches every token once, and the greenlet dies
/// killed, not failed.
#[test]
fn wt03_kill_while_parked_with_panicking_unwatches() {
    let out = crate::util::limited_child(
        "probes74::wt03_kill_while_parked_with_panicking_unwatches",
        "p74-wt03",
        &[],
        Duration::from_secs(10),
        || {
            bounded(|| {
                let failures = Rc::new(Cell::new(0));
                let f = failures.clone();
                sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |_| f.set(f.get() + 1))));
                let a = Rc::new(Bad::unwatch_panics(usize::MAX));
                let b = Rc::new(Bad::unwatch_panics(usize::MAX));
                let ev = Rc::new(Event::new());
                let (a2, b2, ev2) = (a.clone(), b.clone(), ev.clone());
                let g = spawn(move || {
                    let objs: [&dyn Waitable; 3] = [&*a2, &*ev2, &*b2];
                    sylvan::wait(&objs, None, None)
                });
                yield_now();
                assert_eq!((a.live(), b.live(), ev.waiters()), (1, 1, 1));
                g.kill();
                assert!(g.is_dead());
                assert_eq!((a.live(), b.live(), ev.waiters()), (0, 0, 0));
                assert_eq!(
                    (a.unwatched.borrow().len(), b.unwatched.borrow().len()),
                    (1, 1)
                );
                assert_eq!(failures.get(), 0, "a kill is no failure");
                println!("KILLED OK");
            })
        },
    );
    if let Some(out) = out {
        let (o, e) = crate::util::texts(&out);
        assert!(!crate::util::aborted(&out), "aborted\n{o}\n{e}");
        assert!(o.contains("KILLED OK"), "{o}\n{e}");
    }
}

/// A `Timeout` expiring while parked in `iwait` whose `unwatch`es panic:
/// `with_timeout` still gets its own expiry (`Err(Elapsed)`), the unwatch
/// panics dropped during that unwind, nothing left registered.
#[test]
fn wt04_a_timeout_while_parked_is_not_replaced_by_an_unwatch_panic() {
    bounded(|| {
        let a = Bad::unwatch_panics(usize::MAX);
        let ev = Event::new();
        let objs: [&dyn Waitable; 2] = [&ev, &a];
        let r = sylvan::with_timeout(10 * MS, || sylvan::iwait(&objs, None).count());
        assert!(r.is_err(), "{r:?}");
        assert_eq!((a.live(), ev.waiters()), (0, 0));
        assert_eq!(*a.unwatched.borrow(), [1]);
    })
}

/// `wait` with its count reached: the `Take` drops the iterator normally
/// and the `unwatch` of the object not reported panics. The panic comes
/// out of `wait` (not swallowed), after the other registration was taken
/// back too. (gevent's cleanup prints an `unlink`'s exception and returns
/// the result; sylvan chose to raise, as at the deadline.)
#[test]
fn wt05_wait_with_count_reached_raises_an_unwatch_panic_after_the_rest() {
    bounded(|| {
        quiet();
        let ev = Rc::new(Event::new());
        let other = Rc::new(Event::new());
        let a = Rc::new(Bad::unwatch_panics(1));
        let (ev2, other2, a2) = (ev.clone(), other.clone(), a.clone());
        let g = spawn(move || {
            let objs: [&dyn Waitable; 3] = [&*a2, &*ev2, &*other2];
            sylvan::wait(&objs, None, Some(1))
        });
        yield_now();
        ev.set();
        let r = g.join();
        let e = r.expect_err("the unwatch panic comes out of wait");
        assert!(e.to_string().contains("unwatch of 1 panics"), "{e}");
        assert_eq!((a.live(), other.waiters()), (0, 0));
        assert_eq!(*a.unwatched.borrow(), [1]);
    })
}

// ============================================================== signals

type Seen = Rc<RefCell<Vec<(Option<String>, bool)>>>;

/// Records each failure the error policy gets: (name, is a timeout).
fn recording() -> Seen {
    let seen: Seen = Rc::default();
    let s = seen.clone();
    sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |f| {
        s.borrow_mut()
            .push((f.name.map(str::to_owned), f.error.is_timeout()));
    })));
    seen
}

fn raise(sig: i32) {
    // SAFETY: a signal to this thread, which handles it (or ignores it).
    unsafe { libc::pthread_kill(libc::pthread_self(), sig) };
}

fn ignore(sig: i32) {
    // SAFETY: ignores `sig` in this child process until a handler is set.
    unsafe { libc::signal(sig, libc::SIG_IGN) };
}

/// A handler whose `Timeout` of `ms` expires while it sleeps.
fn timing_out(sig: i32, ms: u64) -> sylvan::SignalHandler {
    sylvan::signal(sig, move || {
        let _t = sylvan::Timeout::start(Duration::from_millis(ms));
        sylvan::sleep(Duration::from_secs(5));
    })
    .unwrap()
}

fn is_elapsed(p: &(dyn std::any::Any + Send)) -> bool {
    p.downcast_ref::<sylvan::Elapsed>().is_some()
}

/// Main parked in its own `with_timeout` when a handler's timeout
/// escapes: the `Elapsed` raised is not taken for main's own expiry
/// (`with_timeout` passes it on as a panic, as gevent's `with_timeout`
/// re-raises a Timeout that is not its own), and main's own timeouts work
/// after it (its timer withdrawn, not fired later into a sleep).
#[test]
fn sg01_main_in_its_own_with_timeout_gets_the_handlers_elapsed_as_a_panic() {
    in_child(
        "probes74::sg01_main_in_its_own_with_timeout_gets_the_handlers_elapsed_as_a_panic",
        "p74-sg01",
        || {
            ignore(libc::SIGUSR1);
            let seen = recording();
            let _h = timing_out(libc::SIGUSR1, 10);
            raise(libc::SIGUSR1);
            let t = Instant::now();
            let p = catch_unwind(AssertUnwindSafe(|| {
                sylvan::with_timeout(Duration::from_millis(300), || {
                    sylvan::sleep(Duration::from_secs(3))
                })
            }))
            .expect_err("a panic, not main's own Err(Elapsed)");
            assert!(is_elapsed(&*p));
            assert!(
                t.elapsed() < Duration::from_millis(250),
                "{:?}",
                t.elapsed()
            );
            // main's own timeout was withdrawn: a sleep past it is whole
            let t = Instant::now();
            sylvan::sleep(Duration::from_millis(400));
            assert!(t.elapsed() >= Duration::from_millis(400));
            // and a new one works
            let r = sylvan::with_timeout(10 * MS, || sylvan::sleep(Duration::from_secs(2)));
            assert!(r.is_err());
            assert_eq!(
                *seen.borrow(),
                [(Some(format!("signal {}", libc::SIGUSR1)), true)]
            );
        },
    );
}

/// Main parked in each kind of blocking call in turn gets the handler's
/// timeout as `Elapsed` there, and what it waited on is left usable: a
/// join (`Greenlet::wait`; the greenlet lives on), `iwait` (its registration taken
/// back), `wait_all`, a socket read (the socket reads later), and
/// `spawn_blocking` (main unwinds at once; the job, started, runs on).
#[test]
fn sg02_main_parked_in_each_kind_of_call_gets_elapsed() {
    in_child(
        "probes74::sg02_main_parked_in_each_kind_of_call_gets_elapsed",
        "p74-sg02",
        || {
            use std::io::{Read, Write};
            ignore(libc::SIGUSR1);
            let seen = recording();
            let _h = timing_out(libc::SIGUSR1, 10);
            let expect_elapsed = |what: &str, f: &mut dyn FnMut()| {
                raise(libc::SIGUSR1);
                let t = Instant::now();
                let p = catch_unwind(AssertUnwindSafe(f)).expect_err(what);
                assert!(is_elapsed(&*p), "{what}: {}", message(&*p));
                assert!(
                    t.elapsed() < Duration::from_millis(900),
                    "{what}: {:?}",
                    t.elapsed()
                );
            };
            let g = spawn(|| sylvan::sleep(Duration::from_secs(1)));
            expect_elapsed("join (Greenlet::wait)", &mut || {
                g.wait(None);
            });
            assert!(!g.is_dead(), "the joined greenlet lives on");
            let ev = Event::new();
            expect_elapsed("iwait", &mut || {
                let objs: [&dyn Waitable; 2] = [&ev, &g];
                let _ = sylvan::iwait(&objs, None).count();
            });
            assert_eq!(ev.waiters(), 0);
            expect_elapsed("wait_all", &mut || {
                sylvan::wait_all(None);
            });
            let (mut c, mut s) = crate::util::tcp_pair();
            expect_elapsed("read", &mut || {
                let _ = c.read(&mut [0; 8]);
            });
            s.write_all(b"hi").unwrap();
            let mut buf = [0; 8];
            assert_eq!(c.read(&mut buf).unwrap(), 2, "the socket reads after");
            let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let r2 = ran.clone();
            let started = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            expect_elapsed("spawn_blocking", &mut || {
                let (r2, s2, s3) = (r2.clone(), started.clone(), started.clone());
                // Run once main parks for the job: holds the thread until
                // the job has started, so the handler's timeout fires only
                // then (a job not started when its caller stops waiting is
                // not run at all).
                spawn(move || crate::util::block_until("the job started", &s3));
                sylvan::spawn_blocking(move || {
                    s2.store(true, std::sync::atomic::Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(200));
                    r2.store(true, std::sync::atomic::Ordering::SeqCst);
                });
            });
            assert!(
                !ran.load(std::sync::atomic::Ordering::SeqCst),
                "main did not wait for the job"
            );
            assert!(crate::util::wait_for(Duration::from_secs(3), || ran
                .load(std::sync::atomic::Ordering::SeqCst)));
            g.kill();
            assert_eq!(seen.borrow().len(), 5, "{:?}", seen.borrow());
            assert!(seen.borrow().iter().all(|(_, timeout)| *timeout));
        },
    );
}

/// Two handlers whose timeouts expire in the same turn (one deadline for
/// both): each is reported, and gevent raises each in main (the second at
/// main's next blocking call, at once). sylvan raises the first and drops
/// the second (`raise_in_main`: "one at a time"), so main's next sleep
/// runs to its end. gevent 26.9 (two handlers, `Timeout.start_new(0.02)`
/// each, main sleeping 0.5 s three times):
///   main got 0 <Timeout at 0x... seconds=0.02> 0.022
///   main got 1 <Timeout at 0x... seconds=0.02> 0.0
///   main slept 2
/// and the same with two handlers that raise at once (ValueError, then
/// KeyError). Fix: queue the payloads in `main_raise` and raise the next
/// at main's next park.
#[test]
fn sg03_two_handler_timeouts_in_one_turn_are_both_raised_in_main() {
    in_child(
        "probes74::sg03_two_handler_timeouts_in_one_turn_are_both_raised_in_main",
        "p74-sg03",
        || {
            ignore(libc::SIGUSR1);
            ignore(libc::SIGUSR2);
            let seen = recording();
            let deadline = Instant::now() + Duration::from_millis(30);
            let handler = move || {
                let _t = sylvan::Timeout::start_at(deadline);
                sylvan::sleep(Duration::from_secs(5));
            };
            let _h1 = sylvan::signal(libc::SIGUSR1, handler).unwrap();
            let _h2 = sylvan::signal(libc::SIGUSR2, handler).unwrap();
            raise(libc::SIGUSR1);
            raise(libc::SIGUSR2);
            let mut got = Vec::new();
            for _ in 0..3 {
                let r = catch_unwind(AssertUnwindSafe(|| {
                    sylvan::sleep(Duration::from_millis(200))
                }));
                got.push(r.map_err(|p| is_elapsed(&*p)));
            }
            assert_eq!(seen.borrow().len(), 2, "both reported");
            assert_eq!(got, [Err(true), Err(true), Ok(())]);
        },
    );
}

/// A handler that panics at once and one whose timeout expires 20 ms
/// later: each is raised in main in turn (the panic's payload, then
/// `Elapsed`), as gevent does (two.py: `main got 0 ValueError`,
/// `main got 1 <Timeout ...> 0.011`, `main slept 2`).
#[test]
fn sg04_a_handler_panic_then_a_handler_timeout_are_raised_in_turn() {
    in_child(
        "probes74::sg04_a_handler_panic_then_a_handler_timeout_are_raised_in_turn",
        "p74-sg04",
        || {
            ignore(libc::SIGUSR1);
            ignore(libc::SIGUSR2);
            let seen = recording();
            let _h1 = timing_out(libc::SIGUSR1, 20);
            let _h2 = sylvan::signal(libc::SIGUSR2, || panic!("h2 boom")).unwrap();
            raise(libc::SIGUSR1);
            raise(libc::SIGUSR2);
            let mut got = Vec::new();
            for _ in 0..3 {
                let r = catch_unwind(AssertUnwindSafe(|| {
                    sylvan::sleep(Duration::from_millis(200))
                }));
                got.push(r.map_err(|p| {
                    if is_elapsed(&*p) {
                        "Elapsed".to_owned()
                    } else {
                        message(&*p)
                    }
                }));
            }
            assert_eq!(
                got,
                [Err("h2 boom".to_owned()), Err("Elapsed".to_owned()), Ok(())]
            );
            let s = seen.borrow();
            assert_eq!(s.len(), 2);
            assert_eq!((s[0].1, s[1].1), (false, true));
        },
    );
}

/// A `SIGCHLD` handler's escaped timeout is reported, never raised in
/// main; and a handler registered by a hub on another thread raises its
/// timeout in that thread's main only (this thread's sleep is whole).
#[test]
fn sg05_sigchld_only_reports_and_another_threads_hub_gets_its_own() {
    in_child(
        "probes74::sg05_sigchld_only_reports_and_another_threads_hub_gets_its_own",
        "p74-sg05",
        || {
            ignore(libc::SIGUSR2);
            let seen = recording();
            let _c = timing_out(libc::SIGCHLD, 10);
            raise(libc::SIGCHLD);
            let t = Instant::now();
            sylvan::sleep(Duration::from_millis(150));
            assert!(t.elapsed() >= Duration::from_millis(150));
            assert_eq!(
                *seen.borrow(),
                [(Some(format!("signal {}", libc::SIGCHLD)), true)]
            );
            let th = std::thread::spawn(|| {
                let seen = recording();
                let _h = timing_out(libc::SIGUSR2, 10);
                raise(libc::SIGUSR2);
                let p = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(Duration::from_secs(2))))
                    .expect_err("raised in this thread's main");
                assert!(is_elapsed(&*p));
                assert_eq!(seen.borrow().len(), 1);
            });
            let t = Instant::now();
            sylvan::sleep(Duration::from_millis(150));
            assert!(t.elapsed() >= Duration::from_millis(150));
            th.join().unwrap();
            assert_eq!(seen.borrow().len(), 1, "nothing more on this hub");
        },
    );
}

// ============================================================== crawler

/// A threaded HTTP/1.1 keep-alive server: `/` links `/p/0` to
/// `/p/{PAGES-1}`; a page whose number is a multiple of `SLOW_EVERY` is
/// answered after `SLOW` seconds (or never, if the client closes first),
/// others at once; robots.txt after `ROBOTS_MS`. At each accept, the
/// connections whose client has closed are counted closed first (a
/// non-blocking peek), so `max_open` counts the client's sockets, not the
/// server's threads. `/stats` answers `connections max_open robots
/// requests` (its own connection left out) and closes. Prints its port.
const COUNTING: &str = r#"
import os, select, socket, threading, time
PAGES = int(os.environ["PAGES"]); SLOW = float(os.environ["SLOW"])
SLOW_EVERY = int(os.environ["SLOW_EVERY"]); ROBOTS = float(os.environ["ROBOTS_MS"]) / 1000
lock = threading.Lock()
st = {"conns": 0, "max_open": 0, "robots": 0, "reqs": 0}
live = set()
def gone(c):
    try:
        return c.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
def resp(c, body, ctype="text/html"):
    body = body.encode()
    c.sendall(("HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (ctype, len(body))).encode() + body)
def handle(c):
    f = c.makefile("rb")
    try:
        while True:
            line = f.readline(65536)
            if not line: return
            p = line.decode("latin1").split()[1]
            while f.readline(65536) not in (b"\r\n", b"\n", b""): pass
            if p == "/stats":
                with lock: resp(c, "%d %d %d %d" % (st["conns"] - 1, st["max_open"], st["robots"], st["reqs"]), "text/plain")
                return
            with lock: st["reqs"] += 1
            if p == "/robots.txt":
                with lock: st["robots"] += 1
                time.sleep(ROBOTS)
                resp(c, "", "text/plain"); continue
            if p == "/":
                resp(c, "<html>" + "".join("<a href='/p/%d'>x</a>" % i for i in range(PAGES)) + "</html>"); continue
            n = int(p.rsplit("/", 1)[1])
            if n % SLOW_EVERY == 0:
                r, _, _ = select.select([c], [], [], SLOW)
                if r and gone(c): return
            resp(c, "<html></html>")
    except OSError:
        pass
    finally:
        with lock: live.discard(c)
        try: c.close()
        except OSError: pass
s = socket.socket()
s.bind(("127.0.0.1", 0)); s.listen(256)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    with lock:
        for o in [o for o in live if gone(o)]: live.discard(o)
        live.add(c)
        st["conns"] += 1; st["max_open"] = max(st["max_open"], len(live))
    threading.Thread(target=handle, args=(c,), daemon=True).start()
"#;

/// Leased agent slots under timeouts and retries: 40 pages, every fourth
/// held 3 s against `--timeout 0.25` and retried once (so 20 attempts
/// time out, each dropping its connection), robots.txt slow, at
/// `--concurrency` 1, 7, 8, 9, 17 and 64. Never more connections open at
/// once than `--concurrency`; no more made than `--concurrency` plus one
/// per timed-out attempt (keep-alive reuse: the fast pages reuse what is
/// left); and the crawl ends in a time that a leaked slot (fetches
/// crowding agent 0, connecting anew) or a serialised crawl would exceed.
#[test]
fn cr01_leased_slots_keep_connections_within_concurrency_under_timeouts() {
    for c in [1u64, 7, 8, 9, 17, 64] {
        let (mut server, port) = crate::crawler2::spawn_server(
            COUNTING,
            &[
                ("PAGES", "40"),
                ("SLOW", "3"),
                ("SLOW_EVERY", "4"),
                ("ROBOTS_MS", "100"),
            ],
        );
        let start = format!("http://127.0.0.1:{port}/");
        let t = Instant::now();
        let r = crate::crawler2::run(
            &[
                &start,
                "-c",
                &c.to_string(),
                "--timeout",
                "0.25",
                "--retries",
                "1",
                "--backoff-ms",
                "20",
            ],
            Duration::from_secs(30),
        );
        let took = t.elapsed();
        let st = crate::crawler2::server_stats(port);
        let _ = server.kill();
        let _ = server.wait();
        assert!(r.status.is_some_and(|s| s.success()), "c={c}: {}", r.stderr);
        let pages = r.by_path();
        assert_eq!(pages.len(), 41, "c={c}: every page once");
        let timeouts = pages.values().filter(|l| l["error"] == "timeout").count() as u64;
        assert_eq!(timeouts, 10, "c={c}: the slow pages time out");
        let [conns, max_open, robots, reqs] = st[..] else {
            panic!("{st:?}")
        };
        assert_eq!((robots, reqs), (1, 1 + 1 + 30 + 20), "c={c}");
        assert!(max_open <= c, "c={c}: {max_open} connections open at once");
        assert!(
            conns <= c + 20,
            "c={c}: {conns} connections made (20 attempts timed out)"
        );
        // 20 timed-out attempts of 0.25 s plus backoff, spread over c
        // greenlets; serialised at c=1 that is about 5.5 s.
        let bound = Duration::from_millis(1500 + 6000 / c.min(10));
        assert!(took < bound, "c={c}: took {took:?} (bound {bound:?})");
    }
}
