//! Probe round 36: a hostile review of four small changes.
//!
//! * `turn()` runs idle waiters only after a zero-timeout poll found
//!   nothing: an `idle()` loop starves no loopback IO, timer,
//!   `Handle::spawn` job or `spawn_blocking` result (`i01`); `idle()`
//!   still returns while everything else is parked on an `Event`, a
//!   silent socket, an hour's sleep, a `KeepAlive` or a blocking job in
//!   flight (`i02`); several waiters all wake, after the busy greenlets,
//!   one killed while waiting stops none (`i03`); two idle loops
//!   alternate and a sleeper still wakes (`i04`).
//! * `stderr!`: with fd 2 closed (`e01`) or a broken pipe (`e02`), a
//!   greenlet panic under the default policy, a panicking custom policy,
//!   `StreamServer` accept errors (EMFILE), the blocking detector and a
//!   report made while unwinding (a greenlet-local destructor panicking
//!   during a kill) panic nothing and abort nothing; with fd 2 a file
//!   every one of them is written (`e03`); libtest still captures a
//!   report (`e04`).
//! * `Unobserved` under `ErrorPolicy::IgnoreObserved`: a `link` or
//!   `link_exception` callback cancelled at thread exit reports its
//!   failure once (`u01`), once for several callbacks (`u02`), not again
//!   for one added after the death's own report (`u03`); never for
//!   callbacks that ran, panicked or were killed mid-way (`u04`); never
//!   under `Report` or a custom policy (`u05`); never for `link_value` or
//!   callbacks `unlink_all` removed (`u06`); thread exit with callbacks
//!   pending on several greenlets, failed, returned, killed and alive
//!   (`u07`).
//! * The ready ring (`Ring::slot`, unchecked; run in debug so its debug
//!   assertion is on): 2 x 18 000 spawns in order (`r01`), 5 000 yielders
//!   in exact round-robin order through kills (`r02`), yielders mixed with
//!   `spawn_later` and IO wake-ups (`r03`), 12 000 `spawn_later` with
//!   kills before start (`r04`), 20 000 `Handle::spawn` jobs in order
//!   (`r05`), a steady queue across thousands of mask wraps (`r06`).
//!
//! Found, and fixed since (checked: both fail at 0e1d68d): under
//! `IgnoreObserved` each cancelled callback reported its failure again
//! (`u02`), and one added after the death's own report repeated it
//! (`u03`). A `failure_reported` flag on the task now allows one report.
//!
//! Noted: every spawn reserves a stack at once (two
//! mappings), so about 30 000 greenlets spawned and not yet run exhaust
//! Linux's default `vm.max_map_count` (65 530); a first draft of `r01`
//! with 60 000 hit it, and the spawn panic's backtrace then deadlocked in
//! std's own out-of-memory hook.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sylvan::net::{StreamServer, TcpListener, TcpStream};
use sylvan::sync::Event;
use sylvan::{Builder, ErrorPolicy};

use crate::util::{
    Log, bounded, child_command, child_texts, echo, in_child, is_child, set_soft_limit,
    tcp_pair as pair, texts,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The lowest descriptor number not open now.
fn lowest_free_fd() -> i32 {
    // SAFETY: F_GETFD only queries the descriptor table.
    (0..)
        .find(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1)
        .unwrap()
}

/// How many reports name the greenlet `name` (the error policy's header).
fn reports_of(stderr: &str, name: &str) -> usize {
    stderr.matches(&format!("greenlet '{name}' (")).count()
}

/// Spawns a greenlet named `name` that panics with `msg`.
fn failing(name: &str, msg: &'static str) -> sylvan::Greenlet<()> {
    Builder::new()
        .name(name)
        .spawn(move || panic!("{msg}"))
        .unwrap()
}

// ===================================================================
// 1. idle() after the poll
// ===================================================================

/// A greenlet looping on `idle()` starves nothing: loopback round trips,
/// a timer, `Handle::spawn` jobs from another thread and `spawn_blocking`
/// results all complete while it loops (bounded rounds).
#[test]
fn i01_an_idle_loop_starves_no_io_timer_remote_job_or_blocking_result() {
    bounded(|| {
        let stop = Rc::new(Cell::new(false));
        let rounds = Rc::new(Cell::new(0u64));
        let (s, r) = (stop.clone(), rounds.clone());
        let looper = sylvan::spawn(move || {
            while !s.get() && r.get() < 5_000_000 {
                sylvan::idle();
                r.set(r.get() + 1);
            }
        });
        sylvan::yield_now();
        // IO.
        let (c, srv) = pair();
        let echoer = sylvan::spawn(move || {
            let mut b = [0u8; 8];
            for _ in 0..50 {
                (&srv).read_exact(&mut b).unwrap();
                (&srv).write_all(&b).unwrap();
            }
        });
        for i in 0..50u64 {
            (&c).write_all(&i.to_le_bytes()).unwrap();
            let mut b = [0u8; 8];
            (&c).read_exact(&mut b).unwrap();
            assert_eq!(u64::from_le_bytes(b), i);
        }
        echoer.join().unwrap();
        // A timer.
        let t = Instant::now();
        sylvan::sleep(ms(5));
        assert!(t.elapsed() < Duration::from_secs(1));
        // Cross-thread jobs.
        let ran = Arc::new(AtomicUsize::new(0));
        let handle = sylvan::Handle::current();
        let r2 = ran.clone();
        let th = std::thread::spawn(move || {
            for _ in 0..3 {
                std::thread::sleep(ms(2));
                let r = r2.clone();
                handle
                    .spawn(move || {
                        r.fetch_add(1, Ordering::SeqCst);
                    })
                    .unwrap();
            }
        });
        crate::util::yield_until("handle jobs ran", || ran.load(Ordering::SeqCst) == 3);
        th.join().unwrap();
        // Blocking pool results.
        for i in 0..5u32 {
            assert_eq!(
                sylvan::spawn_blocking(move || {
                    std::thread::sleep(ms(1));
                    i * 2
                }),
                i * 2
            );
        }
        assert!(!looper.is_dead(), "the idle loop ended early");
        stop.set(true);
        looper.join().unwrap();
        assert!(rounds.get() > 0);
    });
}

/// `idle()` returns while every other greenlet is parked: on an `Event`,
/// a socket read nothing will come to, an hour's sleep, a `KeepAlive`
/// held elsewhere, and while a blocking job is still in flight.
#[test]
fn i02_idle_returns_when_everything_else_is_parked() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let w = sylvan::spawn(move || e.wait());
        let (_c, s) = pair();
        let reader = sylvan::spawn(move || {
            let mut b = [0u8; 1];
            (&s).read(&mut b).map(|_| ())
        });
        let sleeper = sylvan::spawn(|| sylvan::sleep(Duration::from_secs(3600)));
        let keep = sylvan::Handle::current().keep_alive();
        let gate = Arc::new(std::sync::Barrier::new(2));
        let g2 = gate.clone();
        let blocking = sylvan::spawn(move || {
            sylvan::spawn_blocking(move || {
                g2.wait();
            })
        });
        sylvan::yield_now();
        sylvan::yield_now();
        let t = Instant::now();
        for _ in 0..20 {
            sylvan::idle();
        }
        assert!(t.elapsed() < ms(500), "{:?}", t.elapsed());
        assert!(!w.is_dead() && !reader.is_dead() && !sleeper.is_dead());
        assert!(!blocking.is_dead());
        gate.wait();
        blocking.join().unwrap();
        drop(keep);
        ev.set();
        w.join().unwrap();
        reader.kill();
        sleeper.kill();
    });
}

/// gevent's idle: waiters run only once the busy greenlets are done
/// yielding (across many hub turns), and several waiters all wake in the
/// same round; one killed while waiting does not stop the others.
#[test]
fn i03_several_idle_waiters_all_wake_after_the_busy_ones() {
    bounded(|| {
        let log = Log::default();
        for i in 0..5 {
            let l = log.clone();
            sylvan::spawn(move || {
                sylvan::idle();
                l.push(format!("idle{i}"));
            });
        }
        let doomed = sylvan::spawn(sylvan::idle);
        let l = log.clone();
        let busy = sylvan::spawn(move || {
            for _ in 0..500 {
                sylvan::yield_now();
            }
            l.push("busy-done");
        });
        sylvan::yield_now();
        doomed.kill();
        busy.join().unwrap();
        crate::util::yield_until("idle waiters woke", || log.get().len() == 6);
        let got = log.take();
        assert_eq!(got[0], "busy-done", "{got:?}");
        let mut rest = got[1..].to_vec();
        rest.sort();
        assert_eq!(rest, ["idle0", "idle1", "idle2", "idle3", "idle4"]);
    });
}

/// Two greenlets both looping on `idle()` take turns (neither starves the
/// other), and a sleeping greenlet still gets woken by its timer.
#[test]
fn i04_two_idle_loops_alternate_and_a_sleeper_wakes() {
    bounded(|| {
        let counts = Rc::new([Cell::new(0u32), Cell::new(0u32)]);
        let stop = Rc::new(Cell::new(false));
        let loops: Vec<_> = (0..2)
            .map(|i| {
                let (c, s) = (counts.clone(), stop.clone());
                sylvan::spawn(move || {
                    let mut n = 0;
                    while !s.get() && n < 1_000_000 {
                        sylvan::idle();
                        c[i].set(c[i].get() + 1);
                        n += 1;
                    }
                })
            })
            .collect();
        let t = Instant::now();
        sylvan::sleep(ms(20));
        assert!(t.elapsed() < Duration::from_secs(1));
        stop.set(true);
        for l in loops {
            l.join().unwrap();
        }
        let (a, b) = (counts[0].get(), counts[1].get());
        assert!(a > 0 && b > 0 && a.abs_diff(b) <= 1, "{a} vs {b}");
    });
}

// ===================================================================
// 2. stderr!: reports never panic
// ===================================================================

sylvan::greenlet_local! {
    static BOOM_ON_DROP: RefCell<Option<PanicsOnDrop>> = RefCell::new(None);
}

/// Panics when dropped (unless already unwinding, which would abort).
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("local destructor boom");
    }
}

/// Where stderr goes in [`provoke_reports`]'s child.
#[derive(Clone, Copy)]
enum Stderr {
    /// fd 2 closed.
    Closed,
    /// A pipe whose read end is closed (EPIPE on every write).
    BrokenPipe,
    /// A file, read back at the end to prove every report was made.
    File,
}

/// Makes one of each kind of sylvan report with stderr as `mode` says:
/// a greenlet panic under the default policy, a custom policy that
/// panics, a `StreamServer` accept error (EMFILE), the blocking
/// detector, and a report made while unwinding (a greenlet-local
/// destructor that panics during a kill). Everything must keep working;
/// progress is said on stdout.
fn provoke_reports(mode: Stderr) {
    let file = std::env::temp_dir().join(format!("sylvan-p36-stderr-{}", std::process::id()));
    // SAFETY: redirects this (child) process's fd 2 as `mode` says.
    unsafe {
        match mode {
            Stderr::Closed => {
                libc::close(2);
            }
            Stderr::BrokenPipe => {
                let mut fds = [0; 2];
                assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
                libc::close(fds[0]);
                assert_eq!(libc::dup2(fds[1], 2), 2);
                libc::close(fds[1]);
            }
            Stderr::File => {
                let f = std::fs::File::create(&file).unwrap();
                assert_eq!(libc::dup2(f.as_raw_fd(), 2), 2);
            }
        }
    }
    // 1. The default policy.
    sylvan::set_error_policy(ErrorPolicy::Report);
    let g = failing("e-default", "default boom");
    assert!(g.join().is_err());
    println!("PROBE step default");
    // 2. A custom policy that panics.
    sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(|_| panic!("policy boom"))));
    let g = failing("e-custom", "custom boom");
    assert!(g.join().is_err());
    sylvan::set_error_policy(ErrorPolicy::Report);
    println!("PROBE step custom");
    // 3. Accept errors (EMFILE): the accept loop survives them.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = TcpStream::connect(addr).unwrap();
    let old = set_soft_limit(libc::RLIMIT_NOFILE, lowest_free_fd() as libc::rlim_t);
    let server = StreamServer::new(listener, echo).start().unwrap();
    sylvan::sleep(ms(50));
    set_soft_limit(libc::RLIMIT_NOFILE, old);
    assert!(server.is_started(), "the accept loop died");
    (&client).write_all(b"ping").unwrap();
    let mut b = [0u8; 4];
    (&client).read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ping");
    server.stop(Some(ms(500)));
    println!("PROBE step accept");
    // 4. The blocking detector (its report is made on its own thread).
    let det = sylvan::BlockingDetector::start(ms(20));
    sylvan::sleep(ms(5));
    std::thread::sleep(ms(150));
    sylvan::sleep(ms(50));
    drop(det);
    println!("PROBE step detector");
    // 5. A report made while unwinding.
    let g = Builder::new()
        .name("e-unwind")
        .spawn(|| {
            BOOM_ON_DROP.with(|b| *b.borrow_mut() = Some(PanicsOnDrop));
            sylvan::sleep(Duration::from_secs(3600));
        })
        .unwrap();
    sylvan::yield_now();
    g.kill();
    assert!(g.is_dead());
    println!("PROBE step unwind");
    // The hub still works.
    assert!(crate::util::loopback_echo(b"done").is_some());
    if let Stderr::File = mode {
        let text = std::fs::read_to_string(&file).unwrap();
        let _ = std::fs::remove_file(&file);
        for want in [
            "greenlet 'e-default' (",
            "the custom error policy panicked while handling: greenlet 'e-custom'",
            "accept failed",
            "has blocked the hub",
            "greenlet-local destructor panicked while its greenlet unwound",
        ] {
            assert!(text.contains(want), "no {want:?} in\n{text}");
        }
    }
}

/// fd 2 closed: every kind of report is lost quietly.
#[test]
fn e01_reports_with_stderr_closed() {
    in_child(
        "probes36::e01_reports_with_stderr_closed",
        "p36-e01",
        || provoke_reports(Stderr::Closed),
    );
}

/// stderr a broken pipe: no report panics what made it.
#[test]
fn e02_reports_with_stderr_a_broken_pipe() {
    in_child(
        "probes36::e02_reports_with_stderr_a_broken_pipe",
        "p36-e02",
        || provoke_reports(Stderr::BrokenPipe),
    );
}

/// The same provocations with stderr a file: each report is there (so
/// e01 and e02 did provoke them).
#[test]
fn e03_reports_with_stderr_a_file_are_all_written() {
    in_child(
        "probes36::e03_reports_with_stderr_a_file_are_all_written",
        "p36-e03",
        || provoke_reports(Stderr::File),
    );
}

/// Outside an unwind a report is still `eprintln!`: libtest captures it
/// with the test's output (shown under the failed test's stdout), and it
/// does not leak to the process's stderr.
#[test]
fn e04_reports_are_captured_by_the_test_harness() {
    const NAME: &str = "p36-e04";
    if is_child(NAME) {
        bounded(|| {
            let g = failing("e04-captured", "captured boom");
            assert!(g.join().is_err());
        });
        panic!("PROBE end of e04");
    }
    let mut cmd = child_command(
        "probes36::e04_reports_are_captured_by_the_test_harness",
        NAME,
    );
    // The same test binary, but with capture on (child_command's
    // --nocapture is overridden by dropping it).
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .filter(|a| a != "--nocapture")
        .collect();
    let mut c = std::process::Command::new(cmd.get_program());
    c.args(args).env(crate::util::CHILD_ENV, NAME);
    cmd = c;
    cmd.env_remove("RUST_BACKTRACE");
    let out = cmd.output().unwrap();
    let (stdout, stderr) = texts(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    let section = stdout
        .split("---- probes36::e04_reports_are_captured_by_the_test_harness stdout ----")
        .nth(1)
        .unwrap_or_else(|| panic!("no captured section\n{stdout}"));
    assert!(section.contains("PROBE end of e04"), "{stdout}");
    assert_eq!(reports_of(section, "e04-captured"), 1, "{stdout}");
    assert_eq!(reports_of(&stderr, "e04-captured"), 0, "{stderr}");
}

// ===================================================================
// 3. Unobserved: failures whose observing callback never ran
// ===================================================================

/// Runs `body` on a fresh thread of a re-executed child (its hub is torn
/// down when `body` returns, cancelling link callbacks not yet started),
/// under `policy`; returns the child's stderr in the parent.
fn at_thread_exit(
    path: &str,
    name: &str,
    policy: fn() -> ErrorPolicy,
    body: fn(),
) -> Option<String> {
    child_texts(path, name, move || {
        std::thread::spawn(move || {
            sylvan::set_error_policy(policy());
            bounded(body);
            println!("PROBE thread body done");
        })
        .join()
        .unwrap();
    })
    .map(|(stdout, stderr)| {
        assert!(stdout.contains("PROBE thread body done"), "{stdout}");
        stderr
    })
}

fn ignore_observed() -> ErrorPolicy {
    ErrorPolicy::IgnoreObserved
}

/// Greenlets named `names` that fail once main waits for them all in
/// `joinall`; `register` adds callbacks to each only then (from another
/// greenlet), so main's waiter comes first in each one's links: main is
/// woken ahead of the callbacks' greenlets, returns, and the thread ends
/// before any callback runs.
fn fail_then_exit(names: &[&str], register: fn(&sylvan::Greenlet<()>)) {
    let gate = Rc::new(Event::new());
    let gs: Rc<Vec<sylvan::Greenlet<()>>> = Rc::new(
        names
            .iter()
            .map(|n| {
                let g = gate.clone();
                Builder::new()
                    .name(*n)
                    .spawn(move || {
                        g.wait();
                        panic!("late boom")
                    })
                    .unwrap()
            })
            .collect(),
    );
    let (gs2, g2) = (gs.clone(), gate.clone());
    sylvan::spawn(move || {
        for g in gs2.iter() {
            register(g);
        }
        g2.set();
    });
    assert!(sylvan::joinall(&gs, None));
}

/// The case the change is for: a `link_exception` callback counted the
/// failure as observed, `joinall` returned at the death, the thread ended
/// before the callback ran: reported once. A `link` callback likewise.
#[test]
fn u01_a_callback_cancelled_at_thread_exit_reports_once() {
    let Some(err) = at_thread_exit(
        "probes36::u01_a_callback_cancelled_at_thread_exit_reports_once",
        "p36-u01",
        ignore_observed,
        || {
            fail_then_exit(&["u01-a", "u01-b"], |g| {
                if g.name() == Some("u01-a") {
                    g.link_exception(|_| eprintln!("PROBE callback ran"))
                } else {
                    g.link(|_| eprintln!("PROBE callback ran"))
                }
            });
        },
    ) else {
        return;
    };
    assert_eq!(reports_of(&err, "u01-a"), 1, "{err}");
    assert_eq!(reports_of(&err, "u01-b"), 1, "{err}");
    assert!(!err.contains("PROBE callback ran"), "{err}");
}

/// One failure observed by three callbacks (two `link_exception`, one
/// `link`), none of which runs: one failure, one report.
#[test]
fn u02_several_cancelled_callbacks_report_the_failure_once() {
    let Some(err) = at_thread_exit(
        "probes36::u02_several_cancelled_callbacks_report_the_failure_once",
        "p36-u02",
        ignore_observed,
        || {
            fail_then_exit(&["u02"], |g| {
                g.link_exception(|_| eprintln!("PROBE callback ran"));
                g.link_exception(|_| eprintln!("PROBE callback ran"));
                g.link(|_| eprintln!("PROBE callback ran"));
            });
        },
    ) else {
        return;
    };
    assert!(!err.contains("PROBE callback ran"), "{err}");
    assert_eq!(reports_of(&err, "u02"), 1, "{err}");
}

/// A failure nobody observed is reported at its death; a `link_exception`
/// added afterwards (to the dead greenlet) and cancelled at thread exit
/// must not report it a second time.
#[test]
fn u03_a_callback_added_after_the_report_does_not_report_again() {
    let Some(err) = at_thread_exit(
        "probes36::u03_a_callback_added_after_the_report_does_not_report_again",
        "p36-u03",
        ignore_observed,
        || {
            let g = failing("u03", "boom");
            crate::util::yield_until("u03 died", || g.is_dead());
            g.link_exception(|_| eprintln!("PROBE callback ran"));
        },
    ) else {
        return;
    };
    assert!(!err.contains("PROBE callback ran"), "{err}");
    assert_eq!(reports_of(&err, "u03"), 1, "{err}");
}

/// Callbacks that ran are never reported for: one that panicked (the
/// callback's own greenlet failure is another matter), one killed mid-way
/// at thread exit, one that ran to its end.
#[test]
fn u04_callbacks_that_ran_never_report() {
    let Some(err) = at_thread_exit(
        "probes36::u04_callbacks_that_ran_never_report",
        "p36-u04",
        ignore_observed,
        || {
            let started = Rc::new(Cell::new(0));
            let g = failing("u04", "boom");
            g.link_exception(|_| panic!("callback boom"));
            let s = started.clone();
            g.link_exception(move |_| {
                s.set(s.get() + 1);
                sylvan::sleep(Duration::from_secs(3600));
            });
            let s = started.clone();
            g.link(move |_| s.set(s.get() + 1));
            assert!(sylvan::joinall(&[g], None));
            crate::util::yield_until("callbacks started", || started.get() == 2);
        },
    ) else {
        return;
    };
    assert_eq!(reports_of(&err, "u04"), 0, "{err}");
}

/// Under the other policies the drop adds nothing: `Report` reports once
/// (at the death), a custom policy sees the failure once and nothing is
/// printed.
#[test]
fn u05_other_policies_never_report_at_the_drop() {
    let Some(err) = at_thread_exit(
        "probes36::u05_other_policies_never_report_at_the_drop",
        "p36-u05",
        || ErrorPolicy::Report,
        || {
            let g = failing("u05-report", "boom");
            g.link_exception(|_| ());
            g.link(|_| ());
            assert!(sylvan::joinall(&[g], None));
        },
    ) else {
        return;
    };
    assert_eq!(reports_of(&err, "u05-report"), 1, "{err}");

    let Some((out, err)) = child_texts(
        "probes36::u05_other_policies_never_report_at_the_drop",
        "p36-u05-custom",
        || {
            std::thread::spawn(|| {
                sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(|f| {
                    println!("PROBE custom saw {}", f.name.unwrap_or("?"))
                })));
                let g = failing("u05-custom", "boom");
                g.link_exception(|_| ());
                assert!(sylvan::joinall(&[g], None));
            })
            .join()
            .unwrap();
        },
    ) else {
        return;
    };
    assert_eq!(
        out.matches("PROBE custom saw u05-custom").count(),
        1,
        "{out}"
    );
    assert_eq!(reports_of(&err, "u05-custom"), 0, "{err}");
}

/// `link_value` never observes: its failure is reported at the death, and
/// not again when the callback goes. A callback removed by `unlink_all`
/// before the death does not observe either: one report at the death,
/// none at the removal.
#[test]
fn u06_link_value_and_unlinked_callbacks_report_only_at_the_death() {
    let Some(err) = at_thread_exit(
        "probes36::u06_link_value_and_unlinked_callbacks_report_only_at_the_death",
        "p36-u06",
        ignore_observed,
        || {
            let v = failing("u06-value", "boom");
            v.link_value(|_| ());
            let gate = Rc::new(Event::new());
            let gt = gate.clone();
            let u = Builder::new()
                .name("u06-unlinked")
                .spawn(move || {
                    gt.wait();
                    panic!("late boom")
                })
                .unwrap();
            u.link_exception(|_| ());
            u.link(|_| ());
            sylvan::yield_now();
            u.unlink_all();
            gate.set();
            // No joiner: a waiter would count as observing.
            crate::util::yield_until("both died", || v.is_dead() && u.is_dead());
        },
    ) else {
        return;
    };
    assert_eq!(reports_of(&err, "u06-value"), 1, "{err}");
    assert_eq!(reports_of(&err, "u06-unlinked"), 1, "{err}");
}

/// Thread exit with callbacks pending on several greenlets: each failed
/// one reported exactly once, those that returned, were killed, or are
/// still alive (killed by the teardown) never.
#[test]
fn u07_thread_exit_with_callbacks_pending_on_several_greenlets() {
    let Some(err) = at_thread_exit(
        "probes36::u07_thread_exit_with_callbacks_pending_on_several_greenlets",
        "p36-u07",
        ignore_observed,
        || {
            let mut dead = Vec::new();
            for i in 0..3 {
                let g = Builder::new()
                    .name(format!("u07-ok{i}"))
                    .spawn(|| ())
                    .unwrap();
                g.link(|_| ());
                g.link_exception(|_| ());
                dead.push(g);
            }
            let killed = Builder::new()
                .name("u07-killed")
                .spawn(|| sylvan::sleep(Duration::from_secs(3600)))
                .unwrap();
            killed.link(|_| ());
            killed.link_exception(|_| ());
            sylvan::yield_now();
            killed.kill_nowait();
            dead.push(killed);
            let alive = Builder::new()
                .name("u07-alive")
                .spawn(|| sylvan::sleep(Duration::from_secs(3600)))
                .unwrap();
            alive.link(|_| ());
            alive.link_exception(|_| ());
            assert!(sylvan::joinall(&dead, None));
            // Last, so their callbacks are still pending at the exit; one
            // callback each (u02 covers several on one greenlet).
            let names = [
                "u07-fail0",
                "u07-fail1",
                "u07-fail2",
                "u07-fail3",
                "u07-fail4",
            ];
            fail_then_exit(&names, |g| {
                if g.name().is_some_and(|n| n.ends_with(['0', '2', '4'])) {
                    g.link_exception(|_| ())
                } else {
                    g.link(|_| ())
                }
            });
        },
    ) else {
        return;
    };
    for i in 0..5 {
        assert_eq!(reports_of(&err, &format!("u07-fail{i}")), 1, "{err}");
    }
    for n in ["u07-ok0", "u07-ok1", "u07-ok2", "u07-killed", "u07-alive"] {
        assert_eq!(reports_of(&err, n), 0, "{err}");
    }
}

// ===================================================================
// 4. The ready ring under load (run in debug: its debug assertion on)
// ===================================================================

/// A greenlet on a small stack (thousands live at once).
fn small<T: 'static>(f: impl FnOnce() -> T + 'static) -> sylvan::Greenlet<T> {
    Builder::new()
        .stack_size(sylvan::MIN_STACK_SIZE)
        .spawn(f)
        .unwrap()
}

/// 18 000 greenlets spawned at once (the ring grows past 2^14 entries;
/// each spawn reserves a stack, so not many more fit under Linux's
/// default 65 530 mappings),
/// with a put-back at the front every `POLL_EVERY` switches) start in
/// spawn order, each exactly once; then a second wave from inside the
/// first wave's last greenlet, likewise.
#[test]
fn r01_eighteen_thousand_spawns_twice_start_in_order() {
    bounded(|| {
        const N: u32 = 18_000;
        let seen: Rc<RefCell<Vec<u32>>> = Rc::default();
        for i in 0..N {
            let s = seen.clone();
            sylvan::spawn(move || {
                s.borrow_mut().push(i);
                if i == N - 1 {
                    for j in N..2 * N {
                        let s = s.clone();
                        sylvan::spawn(move || s.borrow_mut().push(j));
                    }
                }
            });
        }
        crate::util::yield_until("all ran", || seen.borrow().len() == 2 * N as usize);
        let v = seen.take();
        assert!(v.iter().copied().eq(0..2 * N), "out of order or missing");
    });
}

/// 5 000 greenlets yielding round after round keep exact round-robin
/// order; every third one killed after the first round dies at its turn
/// and the others go on in order.
#[test]
fn r02_yielders_keep_round_robin_order_through_kills() {
    bounded(|| {
        const N: u32 = 5_000;
        const ROUNDS: u32 = 4;
        let log: Rc<RefCell<Vec<(u32, u32)>>> = Rc::default();
        let gs: Vec<_> = (0..N)
            .map(|i| {
                let l = log.clone();
                small(move || {
                    for r in 0..ROUNDS {
                        l.borrow_mut().push((r, i));
                        sylvan::yield_now();
                    }
                })
            })
            .collect();
        sylvan::yield_now(); // every greenlet has logged round 0
        assert_eq!(log.borrow().len(), N as usize);
        for g in gs.iter().step_by(3) {
            g.kill_nowait();
        }
        assert!(sylvan::joinall(&gs, None));
        let got = log.take();
        let mut want: Vec<(u32, u32)> = (0..N).map(|i| (0, i)).collect();
        for r in 1..ROUNDS {
            want.extend((0..N).filter(|i| i % 3 != 0).map(|i| (r, i)));
        }
        assert_eq!(got.len(), want.len());
        assert!(got == want, "round-robin order broken");
    });
}

/// Yielders, timer-started greenlets (`spawn_later`) and IO-woken readers
/// mixed: the yielders keep exact round-robin order among themselves
/// however timers and IO push in (and the loop puts a popped greenlet back
/// at the front to run timers and IO), and everyone finishes.
#[test]
fn r03_yielders_timers_and_io_mixed_keep_order_and_completeness() {
    bounded(|| {
        const N: u32 = 2_000;
        const ROUNDS: u32 = 15;
        let log: Rc<RefCell<Vec<(u32, u32)>>> = Rc::default();
        let yielders: Vec<_> = (0..N)
            .map(|i| {
                let l = log.clone();
                small(move || {
                    for r in 0..ROUNDS {
                        l.borrow_mut().push((r, i));
                        sylvan::yield_now();
                    }
                })
            })
            .collect();
        let fired = Rc::new(RefCell::new(vec![0u8; 500]));
        let timers: Vec<_> = (0..500usize)
            .map(|k| {
                let f = fired.clone();
                sylvan::spawn_later(Duration::from_micros((k as u64 % 10) * 300), move || {
                    f.borrow_mut()[k] += 1;
                    sylvan::yield_now();
                })
            })
            .collect();
        let mut readers = Vec::new();
        let mut writers = Vec::new();
        for k in 0..40u8 {
            let (c, s) = pair();
            readers.push(small(move || {
                let mut b = [0u8; 3];
                (&s).read_exact(&mut b).unwrap();
                b
            }));
            writers.push(small(move || {
                for x in 0..3u8 {
                    sylvan::sleep(Duration::from_micros(200 * u64::from(k % 5)));
                    (&c).write_all(&[k.wrapping_add(x)]).unwrap();
                }
                c
            }));
        }
        assert!(sylvan::joinall(&yielders, None));
        assert!(sylvan::joinall(&timers, None));
        let got: Vec<[u8; 3]> = readers.into_iter().map(|r| r.join().unwrap()).collect();
        drop(writers);
        for (k, b) in got.iter().enumerate() {
            let k = k as u8;
            assert_eq!(*b, [k, k + 1, k + 2]);
        }
        assert!(fired.borrow().iter().all(|&n| n == 1));
        let got = log.take();
        let want: Vec<(u32, u32)> = (0..ROUNDS)
            .flat_map(|r| (0..N).map(move |i| (r, i)))
            .collect();
        assert!(got == want, "yielders' order broken");
    });
}

/// 12 000 `spawn_later` greenlets, every fourth killed before it starts:
/// the others run once each, the killed ones never.
#[test]
fn r04_spawn_later_en_masse_with_kills_before_start() {
    bounded(|| {
        const N: usize = 12_000;
        let ran = Rc::new(RefCell::new(vec![0u8; N]));
        let gs: Vec<_> = (0..N)
            .map(|k| {
                let r = ran.clone();
                sylvan::spawn_later(Duration::from_micros((k % 7) as u64 * 100), move || {
                    r.borrow_mut()[k] += 1;
                })
            })
            .collect();
        for g in gs.iter().step_by(4) {
            g.kill();
        }
        assert!(sylvan::joinall(&gs, None));
        for (k, &n) in ran.borrow().iter().enumerate() {
            assert_eq!(n, u8::from(k % 4 != 0), "greenlet {k}");
        }
    });
}

/// 20 000 `Handle::spawn` jobs from another thread run once each, in the
/// order sent, while main keeps yielding.
#[test]
fn r05_twenty_thousand_handle_spawns_run_in_order() {
    bounded(|| {
        const N: usize = 20_000;
        let seen = Arc::new(std::sync::Mutex::new(Vec::with_capacity(N)));
        let handle = sylvan::Handle::current();
        let s = seen.clone();
        let t = std::thread::spawn(move || {
            for k in 0..N {
                let s = s.clone();
                handle.spawn(move || s.lock().unwrap().push(k)).unwrap();
            }
        });
        crate::util::yield_until("jobs ran", || seen.lock().unwrap().len() == N);
        t.join().unwrap();
        let v = seen.lock().unwrap();
        assert!(v.iter().copied().eq(0..N), "out of order or missing");
    });
}

/// A steady queue of 100 yielders for 3 000 rounds: the ring's counters
/// go round its mask thousands of times, with a put-back at the front
/// every `POLL_EVERY` switches and a timer firing now and then; each step
/// follows the one before it in exact round-robin order.
#[test]
fn r06_steady_round_robin_across_many_wraps() {
    bounded(|| {
        const N: u32 = 100;
        const ROUNDS: u32 = 3_000;
        let last: Rc<Cell<Option<(u32, u32)>>> = Rc::default();
        let bad: Rc<Cell<u32>> = Rc::default();
        let gs: Vec<_> = (0..N)
            .map(|i| {
                let (l, b) = (last.clone(), bad.clone());
                small(move || {
                    for r in 0..ROUNDS {
                        let want = match i {
                            0 if r == 0 => None,
                            0 => Some((r - 1, N - 1)),
                            _ => Some((r, i - 1)),
                        };
                        if l.get() != want {
                            b.set(b.get() + 1);
                        }
                        l.set(Some((r, i)));
                        sylvan::yield_now();
                    }
                })
            })
            .collect();
        let ticks = Rc::new(Cell::new(0u32));
        let tk = ticks.clone();
        let ticker = sylvan::spawn(move || {
            for _ in 0..20 {
                sylvan::sleep(Duration::from_micros(500));
                tk.set(tk.get() + 1);
            }
        });
        assert!(sylvan::joinall(&gs, None));
        assert_eq!(bad.get(), 0, "steps out of round-robin order");
        assert_eq!(last.get(), Some((ROUNDS - 1, N - 1)));
        ticker.join().unwrap();
        assert_eq!(ticks.get(), 20);
    });
}
