//! Probe round 25: a hostile review of round 24's fixes. `os::Fd` telling
//! open file descriptions apart (`same_description`'s `O_APPEND` flip) with
//! dups wrapped on two threads at once, separate eventfds and every order
//! of drop and `into_inner`; forked children (IO on the old hub, reinitialised after the fork, a
//! hub on a new thread working, fork after fork, the parent undisturbed,
//! `spawn_blocking` in the child); `std::process::exit` from a greenlet, a
//! link callback and a `spawn_blocking` job with buffered stdout;
//! `Group::kill` shooting each member once (a survivor killed through its
//! handle, new members in reused slots, a kill from inside a member while
//! another runs); the error policy's join copy (message, location,
//! backtrace, `Error::resume`, timeouts); panic payloads whose `Drop`
//! panics, dropped while a greenlet unwinds; `greenlet_local!` re-entrant
//! initializers compared with `thread_local!` (two levels, a panicking
//! outer one); the backtrace room on 24/32/40 KiB stacks under
//! `RUST_BACKTRACE=1` and `full`; `Timeout` being `!Send`; and the
//! crawler's shortest-path `--max-depth` and cross-visit redirect loops at
//! `-c 16` with slow pages.
//!
//! `ignore`; the rest are regression tests. Every test is bounded (`bounded`,
//! a child process under a time limit, or a crawler run under a bound).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::Child;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::crawler2::{run, spawn_server};
use crate::util::{
    bounded, fork_child, in_child, is_child, quiet, reap_blocking, run_child_limited, texts,
    wait_for,
};

// ----- os::Fd: separate descriptions and dups -------------------------------

/// An owned raw descriptor, closed on drop.
struct Raw(RawFd);

impl AsRawFd for Raw {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor.
        unsafe { libc::close(self.0) };
    }
}

/// A blocking eventfd.
fn eventfd() -> Raw {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    assert!(fd >= 0, "eventfd");
    Raw(fd)
}

fn dup(fd: RawFd) -> Raw {
    // SAFETY: `fd` is open.
    let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    assert!(d >= 0, "dup");
    Raw(d)
}

fn getfl(fd: RawFd) -> libc::c_int {
    // SAFETY: reads the flags of an open descriptor.
    let f = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    assert!(f >= 0, "F_GETFL");
    f
}

fn nonblocking(fd: RawFd) -> bool {
    getfl(fd) & libc::O_NONBLOCK != 0
}

/// Adds one to `c` and spins until it reaches `n` (a barrier whose
/// waiters leave within nanoseconds of each other).
fn spin(c: &AtomicUsize, n: usize) {
    c.fetch_add(1, Ordering::SeqCst);
    spin_until(c, n);
}

/// Spins until `c` reaches `n`; panics after 5 s (the other thread died),
/// so that the scope ends instead of spinning for ever.
fn spin_until(c: &AtomicUsize, n: usize) {
    let t = std::time::Instant::now();
    while c.load(Ordering::SeqCst) < n {
        std::hint::spin_loop();
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "barrier: the other thread never came"
        );
    }
}

/// Two dups of one blocking eventfd, wrapped by two threads at the same
/// moment: one description, so it must stay non-blocking until the last
/// `Fd` goes. `Fd::new` reads the flags *before* it takes the registry's
/// lock; when the other thread's `new` sets `O_NONBLOCK` in between,
/// `same_description` compares a stale "blocking" with the wrapped
/// "non-blocking", decides they differ, and makes a second entry: the
/// first `Fd` to drop then restores blocking mode under the other, still
/// alive (whose reads now block the whole thread).
#[test]
fn fd_dups_wrapped_at_once_on_two_threads_stay_non_blocking_while_one_lives() {
    let mut bad = Vec::new();
    for round in 0..300 {
        let e = eventfd();
        let (d1, d2) = (dup(e.0), dup(e.0));
        let fd2 = d2.0;
        let go = AtomicUsize::new(0);
        let still_nonblocking = std::thread::scope(|s| {
            let go = &go;
            let t1 = s.spawn(move || {
                spin(go, 2);
                let f = sylvan::os::Fd::new(d1).expect("wrap dup 1");
                spin(go, 4);
                drop(f);
                go.fetch_add(1, Ordering::SeqCst);
            });
            let t2 = s.spawn(move || {
                spin(go, 2);
                let f = sylvan::os::Fd::new(d2).expect("wrap dup 2");
                spin(go, 4);
                spin_until(go, 5);
                let nb = nonblocking(fd2);
                drop(f);
                nb
            });
            t1.join().unwrap();
            t2.join().unwrap()
        });
        if !still_nonblocking {
            bad.push(round);
        }
        assert!(
            !nonblocking(e.0),
            "round {round}: flags not restored at the end"
        );
        assert_eq!(
            getfl(e.0) & libc::O_APPEND,
            0,
            "round {round}: O_APPEND left set"
        );
    }
    assert!(
        bad.is_empty(),
        "in {} of 300 rounds the first Fd's drop made the other thread's live Fd blocking \
         (rounds {:?}...)",
        bad.len(),
        &bad[..bad.len().min(10)]
    );
}

/// Dups wrapped one after another on two threads are one description: the
/// flags come back only when the last goes, whichever thread drops first.
#[test]
fn fd_dups_wrapped_in_turn_on_two_threads_restore_at_the_last_drop() {
    for first_drops_first in [true, false] {
        let e = eventfd();
        let (d1, d2) = (dup(e.0), dup(e.0));
        let efd = e.0;
        let (tx_wrapped, rx_wrapped) = std::sync::mpsc::channel();
        let (tx_drop, rx_drop) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            let f = sylvan::os::Fd::new(d2).unwrap();
            tx_wrapped.send(()).unwrap();
            rx_drop.recv().unwrap();
            drop(f);
        });
        let f = sylvan::os::Fd::new(d1).unwrap();
        rx_wrapped.recv().unwrap();
        assert!(nonblocking(efd));
        if first_drops_first {
            drop(f);
            assert!(nonblocking(efd), "the other thread's Fd is alive");
            tx_drop.send(()).unwrap();
            t.join().unwrap();
        } else {
            tx_drop.send(()).unwrap();
            t.join().unwrap();
            assert!(nonblocking(efd), "this thread's Fd is alive");
            drop(f);
        }
        assert!(!nonblocking(efd), "restored after the last");
        assert_eq!(getfl(efd) & libc::O_APPEND, 0);
    }
}

/// Two dups of eventfd A and a separate eventfd B (same anonymous inode,
/// same flags), wrapped on one thread and let go in every order, each by
/// drop or by `into_inner`: A is non-blocking exactly while one of its
/// `Fd`s lives, B exactly while its own does, and `O_APPEND` never stays.
#[test]
fn fd_dups_and_a_separate_eventfd_in_every_order_of_drop_and_into_inner() {
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for order in orders {
        for unwrap_mask in 0..8u32 {
            let a = eventfd();
            let b = eventfd();
            let mut fds: Vec<Option<sylvan::os::Fd<Raw>>> = vec![
                Some(sylvan::os::Fd::new(dup(a.0)).unwrap()),
                Some(sylvan::os::Fd::new(dup(a.0)).unwrap()),
                Some(sylvan::os::Fd::new(dup(b.0)).unwrap()),
            ];
            for (step, &i) in order.iter().enumerate() {
                let f = fds[i].take().unwrap();
                if unwrap_mask & (1 << i) != 0 {
                    let raw = f.into_inner();
                    drop(raw);
                } else {
                    drop(f);
                }
                let a_alive = fds[0].is_some() || fds[1].is_some();
                let b_alive = fds[2].is_some();
                let ctx =
                    format!("order {order:?}, into_inner mask {unwrap_mask:03b}, step {step}");
                assert_eq!(nonblocking(a.0), a_alive, "A: {ctx}");
                assert_eq!(nonblocking(b.0), b_alive, "B: {ctx}");
                assert_eq!(getfl(a.0) & libc::O_APPEND, 0, "A: {ctx}");
                assert_eq!(getfl(b.0) & libc::O_APPEND, 0, "B: {ctx}");
            }
        }
    }
}

/// A socket whose peer thread also holds a dup and reads it in blocking
/// mode: while our `Fd` lives the peer's read says `WouldBlock` (one
/// description); once it is dropped the peer's read waits for data again.
#[test]
fn fd_on_a_socket_a_peer_thread_also_holds_gives_it_back_blocking() {
    let (ours, other_end) = std::os::unix::net::UnixStream::pair().unwrap();
    let peer = ours.try_clone().unwrap();
    let f = sylvan::os::Fd::new(ours).unwrap();
    let mut buf = [0u8; 4];
    let e = std::io::Read::read(&mut &peer, &mut buf).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    drop(f);
    assert!(!nonblocking(peer.as_raw_fd()));
    let t = std::thread::spawn(move || {
        let mut buf = [0u8; 4];
        let n = std::io::Read::read(&mut &peer, &mut buf).unwrap();
        buf[..n].to_vec()
    });
    std::thread::sleep(Duration::from_millis(30));
    assert!(!t.is_finished(), "the peer's blocking read returned early");
    std::io::Write::write_all(&mut &other_end, b"late").unwrap();
    assert_eq!(t.join().unwrap(), b"late");
}

// ----- fork -------------------------------------------------------------------

/// How long a forked child may take before it is killed and reaped
/// ([`crate::util::HUNG`]).
const REAP: Duration = Duration::from_secs(10);

/// A loopback echo through a hub made on a new thread: true if it worked.
fn echo_on_a_new_thread() -> bool {
    std::thread::spawn(|| {
        use std::io::{Read, Write};
        let l = sylvan::net::TcpListener::bind("127.0.0.1:0").ok()?;
        let addr = l.local_addr().ok()?;
        let server = sylvan::spawn(move || {
            let (c, _) = l.accept().ok()?;
            let mut b = [0u8; 4];
            (&c).read_exact(&mut b).ok()?;
            (&c).write_all(&b).ok()
        });
        let c = sylvan::net::TcpStream::connect(addr).ok()?;
        (&c).write_all(b"ping").ok()?;
        let mut b = [0u8; 4];
        (&c).read_exact(&mut b).ok()?;
        server.join().ok()??;
        (&b == b"ping").then_some(())
    })
    .join()
    .is_ok_and(|r| r.is_some())
}

/// The forked child (of a process whose main hub has a listener and a
/// parked acceptor) does IO on that hub (it gets an epoll of its own, as
/// gevent's hub is reinitialised after a fork), its timers still run, and a
/// hub on a new thread works too. Fork after fork: a thread of the child
/// with a hub made after the first fork forks again; in the grandchild both
/// that hub and a newer one work. The parent's acceptor is still woken
/// afterwards.
#[test]
fn forked_children_do_io_on_old_hubs_and_on_new_threads() {
    in_child(
        "probes25::forked_children_do_io_on_old_hubs_and_on_new_threads",
        "p25-fork",
        || {
            use std::io::{Read, Write};
            let l = sylvan::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let acceptor = sylvan::spawn(move || {
                let (c, _) = l.accept().unwrap();
                let mut b = [0u8; 2];
                (&c).read_exact(&mut b).unwrap();
                b
            });
            sylvan::sleep(Duration::from_millis(1));
            let pid = fork_child(|| {
                if !echo_on_a_new_thread_here() {
                    return 10;
                }
                let t = Instant::now();
                sylvan::sleep(Duration::from_millis(5));
                if t.elapsed() < Duration::from_millis(5) {
                    return 11;
                }
                if !echo_on_a_new_thread() {
                    return 12;
                }
                // A thread whose hub is made after this fork forks again.
                let grand = std::thread::spawn(move || {
                    if !echo_on_a_new_thread_here() {
                        return 20;
                    }
                    let pid = fork_child(|| {
                        if !echo_on_a_new_thread_here() {
                            30
                        } else if !echo_on_a_new_thread() {
                            31
                        } else {
                            0
                        }
                    });
                    reap_blocking(pid, REAP)
                })
                .join()
                .unwrap_or(21);
                if grand != 0 {
                    return 100 + grand;
                }
                0
            });
            let code = reap_blocking(pid, REAP);
            assert_eq!(code, 0, "forked child failed with code {code}");
            let t = std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.write_all(b"ok").unwrap();
                std::thread::sleep(Duration::from_millis(50));
            });
            let got = sylvan::with_timeout(Duration::from_secs(2), || acceptor.join())
                .expect("the parent's acceptor was not woken after the forks")
                .unwrap();
            assert_eq!(&got, b"ok");
            t.join().unwrap();
        },
    );
}

/// [`echo_on_a_new_thread`] on the calling thread itself (its hub made
/// now).
fn echo_on_a_new_thread_here() -> bool {
    crate::util::loopback_echo(b"pong").is_some()
}

/// `spawn_blocking` in a forked child: the README says the child's hub
/// does no IO but "its timers and greenlets still run, so the child can
/// clean up and exit" (and cleanup that touches files goes through
/// `spawn_blocking`). The job runs on a fresh pool thread of the child, but
/// its result comes back by a cross-thread wake, which a hub made before
/// the fork never polls for: with a timer armed it sleeps until that timer
/// (`poll.rs`: `thread::sleep(t)`), with none it polls without a timeout,
/// gets `Err(forked())`, and panics "sylvan: polling for IO failed". Both
/// are tried: forked from a thread whose hub has no timer, and from one
/// with a 3 s sleeper parked.
#[test]
fn spawn_blocking_in_a_forked_child_returns_its_value() {
    in_child(
        "probes25::spawn_blocking_in_a_forked_child_returns_its_value",
        "p25-fork-blocking",
        || {
            let mut codes = Vec::new();
            for with_timer in [false, true] {
                // A thread of its own, so that no bound of `in_child` is
                // armed on the forking hub.
                let code = std::thread::spawn(move || {
                    let _sleeper =
                        with_timer.then(|| sylvan::spawn(|| sylvan::sleep(Duration::from_secs(3))));
                    sylvan::sleep(Duration::from_millis(1));
                    let pid = fork_child(|| {
                        let t = Instant::now();
                        let r = std::panic::catch_unwind(|| sylvan::spawn_blocking(|| 42));
                        let took = t.elapsed();
                        if let Err(p) = &r {
                            eprintln!(
                                "forked child: spawn_blocking panicked after {took:?}: {}",
                                sylvan::runtime::payload_message(&**p)
                            );
                        } else {
                            eprintln!("forked child: spawn_blocking returned after {took:?}");
                        }
                        match r {
                            Ok(42) if took < Duration::from_secs(1) => 0,
                            Ok(42) => 2,
                            Ok(_) => 3,
                            Err(_) => 4,
                        }
                    });
                    reap_blocking(pid, REAP)
                })
                .join()
                .unwrap();
                codes.push(code);
            }
            assert_eq!(
                codes,
                [0, 0],
                "forked child without / with a timer: 4 = spawn_blocking panicked, \
                 2 = it took over a second"
            );
        },
    );
}

/// The pre-fork server (gunicorn's model, gevent's `reinit`): a listener
/// made and registered on the main hub before `fork`, then served by the
/// forked child on that same hub. The parent never accepts; a client
/// thread of the parent gets its echo from the child.
#[test]
fn a_forked_child_serves_a_listener_registered_before_the_fork() {
    in_child(
        "probes25::a_forked_child_serves_a_listener_registered_before_the_fork",
        "p25-prefork",
        || {
            use std::io::{Read, Write};
            let l = sylvan::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            // Registered with the parent's epoll, and waited on once.
            let none = sylvan::with_timeout(Duration::from_millis(5), || l.accept());
            assert!(none.is_err(), "nobody connected yet");
            let pid = fork_child(|| {
                let served = sylvan::with_timeout(Duration::from_secs(3), || {
                    let (c, _) = l.accept().ok()?;
                    let mut b = [0u8; 4];
                    (&c).read_exact(&mut b).ok()?;
                    (&c).write_all(&b).ok()
                });
                match served {
                    Ok(Some(())) => 0,
                    Ok(None) => 1,
                    Err(_) => 2,
                }
            });
            let client = std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                s.write_all(b"fork").unwrap();
                let mut b = [0u8; 4];
                s.read_exact(&mut b).map(|()| b)
            });
            let code = reap_blocking(pid, REAP);
            assert_eq!(code, 0, "forked child failed with code {code}");
            assert_eq!(&client.join().unwrap().unwrap(), b"fork");
        },
    );
}

/// A greenlet parked on a socket when the process forks goes on in the
/// child: the child's hub registers the socket with its own epoll and the
/// child's copy of the greenlet reads what arrives. The parent kills its
/// copy first (told to the child through a plain pipe), so that only the
/// child reads.
#[test]
fn a_greenlet_parked_on_io_at_the_fork_reads_in_the_child() {
    in_child(
        "probes25::a_greenlet_parked_on_io_at_the_fork_reads_in_the_child",
        "p25-fork-parked",
        || {
            use std::io::{Read, Write};
            let (a, b) = sylvan::net::UnixStream::pair().unwrap();
            let (mut go_tx, mut go_rx) = std::os::unix::net::UnixStream::pair().unwrap();
            let reader = sylvan::spawn(move || {
                let mut buf = [0u8; 8];
                let n = (&a).read(&mut buf).unwrap();
                buf[..n].to_vec()
            });
            sylvan::sleep(Duration::from_millis(1));
            assert!(!reader.is_dead(), "the reader is parked");
            // The child joins its copy, the parent kills its own.
            let reader = Cell::new(Some(reader));
            let pid = fork_child(|| {
                let reader = reader.take().unwrap();
                let mut go = [0u8; 1];
                if go_rx.read_exact(&mut go).is_err() {
                    1
                } else if (&b).write_all(b"hi").is_err() {
                    2
                } else {
                    match sylvan::with_timeout(Duration::from_secs(3), || reader.join()) {
                        Ok(Ok(v)) if v == b"hi" => 0,
                        Ok(_) => 3,
                        Err(_) => 4,
                    }
                }
            });
            let reader = reader.take().unwrap();
            reader.kill();
            go_tx.write_all(b"g").unwrap();
            let code = reap_blocking(pid, REAP);
            assert_eq!(code, 0, "forked child failed with code {code}");
        },
    );
}

/// A signal handler registered before a fork runs in the process the
/// signal was sent to: the child's registration gets a pipe of its own at
/// the fork (gevent re-makes its signal watchers in `reinit`). Before, both
/// processes read one shared pipe, so the child's signal could run the
/// parent's handler. The child signals itself and tells the parent, which
/// then polls for 100 ms (the absence of a run has no event to wait for)
/// and must not run its handler; its own signal later runs it once.
#[test]
fn a_signal_handler_registered_before_a_fork_runs_where_the_signal_went() {
    in_child(
        "probes25::a_signal_handler_registered_before_a_fork_runs_where_the_signal_went",
        "p25-fork-signal",
        || {
            use std::io::{Read, Write};
            let runs = Rc::new(Cell::new(0));
            let r = runs.clone();
            let _h = sylvan::signal(libc::SIGUSR2, move || r.set(r.get() + 1)).unwrap();
            let (mut sent_tx, mut sent_rx) = std::os::unix::net::UnixStream::pair().unwrap();
            let pid = fork_child(|| {
                // SAFETY: signals this process, which handles SIGUSR2.
                unsafe { libc::kill(libc::getpid(), libc::SIGUSR2) };
                let told = sent_tx.write_all(b"s").is_ok();
                wait_for(Duration::from_secs(3), || runs.get() != 0);
                match (told, runs.get()) {
                    (false, _) => 1,
                    (true, 1) => 0,
                    (true, n) => 10 + n,
                }
            });
            let mut b = [0u8; 1];
            sent_rx.read_exact(&mut b).unwrap();
            for _ in 0..100 {
                sylvan::sleep(Duration::from_millis(1));
            }
            assert_eq!(runs.get(), 0, "the child's signal ran the parent's handler");
            let code = reap_blocking(pid, REAP);
            assert_eq!(code, 0, "forked child failed with code {code}");
            // SAFETY: signals this process, which handles SIGUSR2.
            unsafe { libc::kill(libc::getpid(), libc::SIGUSR2) };
            wait_for(Duration::from_secs(3), || runs.get() != 0);
            assert_eq!(runs.get(), 1, "the parent's own signal");
        },
    );
}

// ----- std::process::exit ------------------------------------------------------

/// `std::process::exit(4)` from a greenlet, a link callback, a
/// `spawn_blocking` job and a plain thread, each after `print!` without a
/// newline: std's `exit` flushes stdout (`rt::cleanup`) wherever it is
/// called from, so the text must come out, with status 4, promptly.
#[test]
fn process_exit_from_greenlet_link_and_blocking_job_flushes_stdout() {
    const PATH: &str = "probes25::process_exit_from_greenlet_link_and_blocking_job_flushes_stdout";
    const MODES: [&str; 4] = ["greenlet", "link", "blocking", "thread"];
    for mode in MODES {
        let name = format!("p25-exit-{mode}");
        if is_child(&name) {
            let say = move || print!("partial-{mode}");
            match mode {
                "greenlet" => {
                    let _parked = sylvan::spawn(|| sylvan::sleep(Duration::from_secs(60)));
                    let g = sylvan::spawn(move || {
                        say();
                        std::process::exit(4)
                    });
                    let _ = g.join();
                }
                "link" => {
                    let g = sylvan::spawn(|| ());
                    g.link(move |_| {
                        say();
                        std::process::exit(4)
                    });
                    sylvan::sleep(Duration::from_secs(10));
                }
                "blocking" => {
                    let _parked = sylvan::spawn(|| sylvan::sleep(Duration::from_secs(60)));
                    sylvan::spawn_blocking(move || {
                        say();
                        std::process::exit(4)
                    });
                }
                _ => {
                    std::thread::spawn(move || {
                        say();
                        std::process::exit(4)
                    });
                    std::thread::sleep(Duration::from_secs(10));
                }
            }
            panic!("exit did not exit");
        }
    }
    if std::env::var(crate::util::CHILD_ENV).is_ok() {
        return;
    }
    for mode in MODES {
        let name = format!("p25-exit-{mode}");
        let t = Instant::now();
        let out = run_child_limited(PATH, &name, &[], Duration::from_secs(15))
            .unwrap_or_else(|| panic!("exit from a {mode} hung"));
        let (stdout, stderr) = texts(&out);
        assert!(
            stdout.contains(&format!("partial-{mode}")),
            "{mode}: buffered stdout lost\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        assert_eq!(
            (out.status.code(), out.status.signal()),
            (Some(4), None),
            "{mode}: stdout:\n{stdout}\nstderr:\n{stderr}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "{mode}: exit was slow"
        );
    }
}

// ----- Pool/Group::kill: each member shot once -----------------------------

/// A member that catches the group's kill keeps running; a later group
/// kill does not shoot it again (it waits); a kill through its own handle
/// ends it; and a member spawned afterwards (whose slab slot may be the
/// survivor's) is shot by the next group kill as a fresh member.
#[test]
fn group_kill_after_a_survivor_was_killed_through_its_handle() {
    bounded(|| {
        let group = sylvan::pool::Group::new();
        let caught = Rc::new(Cell::new(0u32));
        let c2 = caught.clone();
        let survivor = group.spawn(move || {
            let r = std::panic::catch_unwind(|| sylvan::sleep(Duration::from_secs(3600)));
            assert!(r.is_err_and(|p| sylvan::is_unwind_payload(&*p)));
            c2.set(c2.get() + 1);
            sylvan::sleep(Duration::from_secs(3600));
        });
        let plain = group.spawn(|| sylvan::sleep(Duration::from_secs(3600)));
        sylvan::yield_now();
        let r = sylvan::with_timeout(Duration::from_millis(30), || group.kill());
        assert!(r.is_err(), "the kill waits for the survivor");
        assert!(plain.is_dead() && !survivor.is_dead());
        assert_eq!(caught.get(), 1);
        let r = sylvan::with_timeout(Duration::from_millis(30), || group.kill());
        assert!(r.is_err(), "a second group kill waits, not shooting again");
        assert_eq!(caught.get(), 1, "shot twice by the group");
        survivor.kill();
        assert!(survivor.is_dead());
        assert_eq!(group.len(), 0);
        let t = Instant::now();
        group.kill();
        assert!(t.elapsed() < Duration::from_secs(1));
        // New members take freed slots; each is shot by the next kill.
        let fresh: Vec<_> = (0..3)
            .map(|_| group.spawn(|| sylvan::sleep(Duration::from_secs(3600))))
            .collect();
        sylvan::yield_now();
        let r = sylvan::with_timeout(Duration::from_secs(1), || group.kill());
        assert!(r.is_ok(), "a fresh member was taken for shot already");
        for g in fresh {
            assert!(g.join().unwrap_err().is_killed());
        }
    });
}

/// While a non-member's `Group::kill` waits, a member that caught that kill
/// calls `kill` on the group itself: it waits for the other survivor (not
/// shooting it again), then is killed by its own call; the outer kill
/// returns once all are gone.
#[test]
fn group_kill_from_inside_a_member_while_an_outer_kill_runs() {
    bounded(|| {
        let group = Rc::new(sylvan::pool::Group::new());
        let log = crate::util::Log::default();
        let catch_once = |log: crate::util::Log, who: &'static str| {
            let r = std::panic::catch_unwind(|| sylvan::sleep(Duration::from_secs(3600)));
            assert!(r.is_err());
            log.push(format!("{who} caught"));
        };
        let (g1, l1) = (group.clone(), log.clone());
        let m1 = group.spawn(move || {
            catch_once(l1.clone(), "m1");
            g1.kill();
            l1.push("m1 after its own kill");
        });
        let l2 = log.clone();
        let m2 = group.spawn(move || {
            catch_once(l2.clone(), "m2");
            sylvan::sleep(Duration::from_millis(20));
            l2.push("m2 done");
        });
        let m3 = group.spawn(|| sylvan::sleep(Duration::from_secs(3600)));
        sylvan::yield_now();
        let (g0, l0) = (group.clone(), log.clone());
        let killer = sylvan::spawn(move || {
            g0.kill();
            l0.push("outer kill returned");
        });
        killer.join().unwrap();
        assert!(m1.join().unwrap_err().is_killed());
        assert!(m2.join().is_ok());
        assert!(m3.join().unwrap_err().is_killed());
        assert_eq!(group.len(), 0);
        assert_eq!(
            log.take(),
            ["m1 caught", "m2 caught", "m2 done", "outer kill returned"]
        );
    });
}

// ----- the error policy's join copy ---------------------------------------------

/// A join from inside a custom policy gets a copy: same message, location
/// and backtrace (captured under `RUST_BACKTRACE=1`), a payload that is
/// the message (so `Error::resume` re-raises it), and a timeout as a
/// timeout.
#[test]
fn a_policy_join_copy_keeps_message_location_backtrace_and_resumes() {
    const NAME: &str = "p25-policy-copy";
    if is_child(NAME) {
        bounded(|| {
            type Slot = Rc<RefCell<Option<sylvan::Greenlet<()>>>>;
            let slot: Slot = Rc::default();
            let seen: Rc<RefCell<Vec<String>>> = Rc::default();
            let (s2, seen2) = (slot.clone(), seen.clone());
            sylvan::set_error_policy(sylvan::ErrorPolicy::Custom(Rc::new(move |f| {
                let Some(g) = s2.borrow_mut().take() else {
                    return;
                };
                let copy = g.join().unwrap_err();
                match (f.error, &copy) {
                    (sylvan::Error::Panicked(orig), sylvan::Error::Panicked(c)) => {
                        let same = orig.message() == c.message()
                            && orig.location() == c.location()
                            && orig.backtrace() == c.backtrace()
                            && c.backtrace().is_some();
                        let loc = c.location().unwrap_or("").to_owned();
                        let msg = c.message().to_owned();
                        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            copy.resume()
                        }));
                        let resumed = r
                            .err()
                            .and_then(|p| p.downcast::<String>().ok())
                            .map(|s| *s);
                        seen2.borrow_mut().push(format!(
                            "panic same={same} msg={msg} loc={loc} resumed={resumed:?}"
                        ));
                    }
                    (sylvan::Error::TimedOut, c) => {
                        seen2
                            .borrow_mut()
                            .push(format!("timeout copy_is_timeout={}", c.is_timeout()));
                    }
                    (o, c) => seen2.borrow_mut().push(format!("other {o} / {c}")),
                }
            })));
            let line = line!() + 2;
            let g = sylvan::spawn(|| {
                panic!("p25 policy {}", 7);
            });
            *slot.borrow_mut() = Some(g);
            sylvan::sleep(Duration::from_millis(2));
            let g = sylvan::spawn(|| {
                let _t = sylvan::Timeout::start(Duration::from_millis(1));
                sylvan::sleep(Duration::from_secs(5));
            });
            *slot.borrow_mut() = Some(g);
            sylvan::sleep(Duration::from_millis(20));
            let seen = seen.borrow().clone();
            assert_eq!(seen.len(), 2, "{seen:?}");
            let want = format!(
                "panic same=true msg=p25 policy 7 loc=tests/it/probes25.rs:{line}:17 \
                 resumed=Some(\"p25 policy 7\")"
            );
            assert_eq!(seen[0], want);
            assert_eq!(seen[1], "timeout copy_is_timeout=true");
            quiet();
        });
        println!("CHILD ok");
        return;
    }
    let out = run_child_limited(
        "probes25::a_policy_join_copy_keeps_message_location_backtrace_and_resumes",
        NAME,
        &[("RUST_BACKTRACE", "1")],
        Duration::from_secs(60),
    )
    .expect("child hung");
    let (stdout, stderr) = texts(&out);
    assert!(
        out.status.success() && stdout.contains("CHILD ok"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

// ----- panic payloads whose Drop panics -----------------------------------------

struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("p25 bomb's drop");
    }
}

/// A greenlet holds the `Error` of a greenlet that panicked with a payload
/// whose `Drop` panics, and panics itself: the held error is dropped while
/// it unwinds, `drop_payload` catches the payload's own panic, and the
/// greenlet's failure must still be *its* panic: message and location of
/// the `panic!` that ended it, not of the payload's `Drop`.
#[test]
fn a_bomb_payload_dropped_during_an_unwind_keeps_the_real_panic_site() {
    in_child(
        "probes25::a_bomb_payload_dropped_during_an_unwind_keeps_the_real_panic_site",
        "p25-bomb-site",
        || {
            quiet();
            let first = sylvan::spawn(|| std::panic::panic_any(Bomb));
            let held = first.join().unwrap_err();
            assert!(held.is_panic());
            let line = line!() + 3;
            let g = sylvan::spawn(move || {
                let _held = held;
                panic!("p25 the real failure");
            });
            let e = g.join().unwrap_err();
            let p = e.panic().expect("a panic");
            assert_eq!(p.message(), "p25 the real failure");
            let want = format!("tests/it/probes25.rs:{line}:17");
            assert_eq!(p.location(), Some(want.as_str()), "the location of {p}");
        },
    );
}

/// The same payload dropped while a greenlet is *killed* (a nested panic
/// inside an unwind): no abort, the kill completes, later greenlets run.
#[test]
fn a_bomb_payload_dropped_during_a_kill_does_not_abort() {
    in_child(
        "probes25::a_bomb_payload_dropped_during_a_kill_does_not_abort",
        "p25-bomb-kill",
        || {
            quiet();
            let first = sylvan::spawn(|| std::panic::panic_any(Bomb));
            let held = first.join().unwrap_err();
            let g = sylvan::spawn(move || {
                let _held = held;
                sylvan::sleep(Duration::from_secs(3600));
            });
            sylvan::yield_now();
            g.kill();
            assert!(g.join().unwrap_err().is_killed());
            assert_eq!(sylvan::spawn(|| 5).join().unwrap(), 5);
        },
    );
}

// ----- greenlet_local! re-entrant initializers ---------------------------------

/// A value that logs its drop.
struct Tracked(u32, Rc<RefCell<Vec<String>>>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.1.borrow_mut().push(format!("drop {}", self.0));
    }
}

thread_local! {
    static LOG: Rc<RefCell<Vec<String>>> = Rc::default();
    static LEVEL: Cell<u32> = const { Cell::new(0) };
    static FAIL_OUTER: Cell<bool> = const { Cell::new(false) };
}

fn log(s: String) {
    LOG.with(|l| l.borrow_mut().push(s));
}

/// Initializer shared by both declarations below: level 0 and 1 read the
/// key itself (two levels of re-entrance); with `FAIL_OUTER`, level 0
/// panics after the inner read.
macro_rules! reentrant_init {
    ($key:ident) => {{
        let level = LEVEL.with(|l| l.replace(l.get() + 1));
        if level < 2 {
            $key.with(|v| log(format!("level {level} saw {}", v.0)));
        }
        if level == 0 && FAIL_OUTER.with(Cell::get) {
            panic!("p25 outer initializer fails");
        }
        Tracked(level, LOG.with(Rc::clone))
    }};
}

sylvan::greenlet_local! {
    static G_NESTED: Tracked = reentrant_init!(G_NESTED);
}

thread_local! {
    static T_NESTED: Tracked = reentrant_init!(T_NESTED);
}

/// Runs the scenario on a fresh thread with `thread_local!` or in a
/// greenlet with `greenlet_local!`: the log of what each access saw and
/// what was dropped when.
fn nested_scenario(green: bool, fail_outer: bool) -> Vec<String> {
    std::thread::spawn(move || {
        FAIL_OUTER.with(|f| f.set(fail_outer));
        let body = move || {
            let first = std::panic::catch_unwind(|| {
                if green {
                    G_NESTED.with(|v| v.0)
                } else {
                    T_NESTED.with(|v| v.0)
                }
            });
            log(format!("first access: {:?}", first.ok()));
            let again = if green {
                G_NESTED.with(|v| v.0)
            } else {
                T_NESTED.with(|v| v.0)
            };
            log(format!("second access: {again}"));
        };
        if green {
            quiet();
            sylvan::spawn(body).join().unwrap();
            log("greenlet ended".into());
        } else {
            body();
            // The thread_local is dropped at thread exit: mark the same
            // point.
        }
        LOG.with(|l| l.borrow().clone())
    })
    .join()
    .unwrap()
}

/// Two levels of re-entrance: the outermost value wins, the inner ones are
/// dropped as they are replaced, innermost first, as with `thread_local!`.
#[test]
fn greenlet_local_two_level_reentrant_init_matches_thread_local() {
    let green = nested_scenario(true, false);
    let mut thread = nested_scenario(false, false);
    // The thread_local's value is dropped at thread exit, after the log
    // was copied: add what the greenlet's end does.
    thread.push("drop 0".into());
    let green_without_end: Vec<String> = green
        .iter()
        .filter(|s| *s != "greenlet ended")
        .cloned()
        .collect();
    assert_eq!(green_without_end, thread, "greenlet_local vs thread_local");
    assert_eq!(
        green,
        [
            "level 1 saw 2",
            "drop 2",
            "level 0 saw 1",
            "drop 1",
            "first access: Some(0)",
            "second access: 0",
            "drop 0",
            "greenlet ended"
        ]
    );
}

/// The outer initializer panics after an inner access made a value: as
/// with `thread_local!`, that inner value stays and is used by the next
/// access (no second initialization), and is dropped once.
#[test]
fn greenlet_local_panicking_outer_init_keeps_the_inner_value_as_thread_local() {
    let green = nested_scenario(true, true);
    let thread = nested_scenario(false, true);
    let drops = |v: &[String]| v.iter().filter(|s| s.starts_with("drop")).count();
    assert_eq!(
        green
            .iter()
            .filter(|s| !s.starts_with("drop") && *s != "greenlet ended")
            .collect::<Vec<_>>(),
        thread
            .iter()
            .filter(|s| !s.starts_with("drop"))
            .collect::<Vec<_>>(),
        "greenlet_local {green:?} vs thread_local {thread:?}"
    );
    // The thread_local's surviving value drops at thread exit (unlogged).
    assert_eq!(drops(&green), drops(&thread) + 1, "{green:?} / {thread:?}");
    assert_eq!(green.last().map(String::as_str), Some("greenlet ended"));
}

// ----- the backtrace room ----------------------------------------------------

/// A greenlet on a 24, 32 or 40 KiB stack panics at its top under
/// `RUST_BACKTRACE=1` and `full`, the first backtrace of its process (cold
/// symbolization): never an overflow; the report has a backtrace, or the
/// note that it was skipped for want of room.
#[test]
fn panics_on_small_stacks_under_rust_backtrace_never_overflow() {
    const PATH: &str = "probes25::panics_on_small_stacks_under_rust_backtrace_never_overflow";
    const NAME: &str = "p25-bt-room";
    if is_child(NAME) {
        let kib: usize = std::env::var("P25_STACK_KIB").unwrap().parse().unwrap();
        let g = sylvan::Builder::new()
            .name("small")
            .stack_size(kib << 10)
            .spawn(|| panic!("p25 small stack panic"))
            .unwrap();
        let e = g.join().unwrap_err();
        let p = e.panic().unwrap();
        println!(
            "CHILD done bt={}",
            p.backtrace()
                .map_or("none", |b| if b.contains("no backtrace") {
                    "skipped"
                } else {
                    "captured"
                })
        );
        return;
    }
    let mut results = BTreeMap::new();
    for kib in ["24", "32", "40"] {
        for bt in ["1", "full"] {
            let out = run_child_limited(
                PATH,
                NAME,
                &[("RUST_BACKTRACE", bt), ("P25_STACK_KIB", kib)],
                Duration::from_secs(90),
            )
            .unwrap_or_else(|| panic!("{kib} KiB, RUST_BACKTRACE={bt}: hung"));
            let (stdout, stderr) = texts(&out);
            assert!(
                out.status.success() && stdout.contains("CHILD done"),
                "{kib} KiB, RUST_BACKTRACE={bt}: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
                out.status
            );
            assert!(!stderr.contains("overflowed"), "{stderr}");
            assert!(stderr.contains("p25 small stack panic"), "{stderr}");
            let what = stdout
                .split("bt=")
                .nth(1)
                .unwrap_or("")
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_owned();
            assert_ne!(
                what, "none",
                "{kib} KiB, RUST_BACKTRACE={bt}: no backtrace nor note"
            );
            results.insert(format!("{kib}/{bt}"), what);
        }
    }
    eprintln!("backtrace by stack/RUST_BACKTRACE: {results:?}");
    // 24 KiB never has the 32 KiB of room.
    assert_eq!(results["24/1"], "skipped");
    assert_eq!(results["24/full"], "skipped");
    // 40 KiB has it at the top of the stack: the skip is not over-broad.
    assert_eq!(results["40/1"], "captured");
    assert_eq!(results["40/full"], "captured");
}

// ----- Timeout is !Send -----------------------------------------------------------

struct SendProbe<T>(std::marker::PhantomData<T>);

trait NotSendFallback {
    fn is_send(&self) -> bool {
        false
    }
}

impl<T> NotSendFallback for SendProbe<T> {}

impl<T: Send> SendProbe<T> {
    fn is_send(&self) -> bool {
        true
    }
}

/// `Timeout` belongs to the hub that armed it: not `Send` (checked by
/// method resolution, so this test fails if it becomes `Send` again);
/// the probe itself tells a `Send` type.
#[test]
fn timeout_is_not_send_but_elapsed_is() {
    assert!(!SendProbe::<sylvan::Timeout>(std::marker::PhantomData).is_send());
    assert!(SendProbe::<sylvan::Elapsed>(std::marker::PhantomData).is_send());
    assert!(SendProbe::<u32>(std::marker::PhantomData).is_send());
}

// ----- the crawler: shortest paths and redirect loops at -c 16 ---------------------

/// A threaded HTTP/1.1 server: `ROUTES` (a Python dict from path to
/// `(status, location_or_links, sleep)`) where a 3xx gives a `Location` and
/// a 200 a page of links. `/__log` gives the request counts as JSON.
const SITE: &str = r#"
import json, os, socket, threading, time
ROUTES = eval(os.environ["ROUTES"])
lock = threading.Lock(); log = {}
def handle(c):
    f = c.makefile("rb")
    try:
        while True:
            line = f.readline(65536)
            if not line: return
            p = line.decode("latin1").split()[1]
            while f.readline(65536) not in (b"\r\n", b"\n", b""): pass
            if p == "/__log":
                with lock: body = json.dumps(log).encode()
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                return
            with lock: log[p] = log.get(p, 0) + 1
            r = ROUTES.get(p)
            if r is None:
                c.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"); continue
            status, what, sleep = r
            if sleep: time.sleep(sleep)
            if status >= 300:
                c.sendall(b"HTTP/1.1 %d Found\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % (status, what.encode()))
            else:
                body = ("<html><body>" + "".join('<a href="%s">x</a>' % l for l in what) + "</body></html>").encode()
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    except OSError:
        pass
    finally:
        c.close()
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(128)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
"#;

struct Site(Child, u16);

impl Drop for Site {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn site(routes: &str) -> Site {
    let (child, port) = spawn_server(SITE, &[("ROUTES", routes)]);
    Site(child, port)
}

fn request_log(port: u16) -> BTreeMap<String, u64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /__log HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    serde_json::from_str(all.split_once("\r\n\r\n").unwrap().1).unwrap()
}

/// Crawls `/` of `s` at `-c 16`: the lines' `error` by path.
fn crawl16(s: &Site, max_depth: &str) -> BTreeMap<String, Option<String>> {
    let start = format!("http://127.0.0.1:{}/", s.1);
    let r = run(
        &[
            &start,
            "-c",
            "16",
            "--max-depth",
            max_depth,
            "--timeout",
            "5",
            "--retries",
            "0",
        ],
        Duration::from_secs(30),
    );
    assert!(
        r.status.is_some_and(|st| st.success()),
        "crawl failed: {:?}\n{}",
        r.status,
        r.stderr
    );
    r.by_path()
        .into_iter()
        .map(|(p, l)| (p, l["error"].as_str().map(str::to_owned)))
        .collect()
}

/// `--max-depth 3`: the quick path / -> a -> a2 -> b puts b at 3 and its
/// link c too deep; a slow page at depth 1 redirects through r1 to b,
/// whose depth becomes 1 after b was fetched: c (2) and d (3) must be
/// fetched then, e (4) not; every page once.
#[test]
fn crawler_slow_redirect_chain_shortens_a_fetched_page_at_c16() {
    let s = site(
        "{'/': (200, ['/slow', '/a'], 0), '/a': (200, ['/a2'], 0), '/a2': (200, ['/b'], 0), \
         '/b': (200, ['/c'], 0), '/c': (200, ['/d'], 0), '/d': (200, ['/e'], 0), \
         '/e': (200, [], 0), '/slow': (302, '/r1', 0.4), '/r1': (302, '/b', 0)}",
    );
    let got = crawl16(&s, "3");
    let paths: Vec<&str> = got.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        ["/", "/a", "/a2", "/b", "/c", "/d", "/r1", "/slow"],
        "{got:?}"
    );
    assert!(got.values().all(Option::is_none), "{got:?}");
    let log = request_log(s.1);
    for (p, n) in &log {
        assert!(
            *n == 1 || p == "/robots.txt",
            "{p} requested {n} times: {log:?}"
        );
    }
}

/// Two redirect loops whose pages are reached separately, at `-c 16` with
/// slow pages so that the later hop closes them: l1 <-> l2 (both linked),
/// and m1 (slow, linked) -> m2 (reached only through m1) -> m3 (linked,
/// fast) -> m1. Each loop is one `redirect` error; the other pages none.
#[test]
fn crawler_redirect_loops_closed_by_slow_pages_are_errors_at_c16() {
    let s = site(
        "{'/': (200, ['/l1', '/l2', '/m1', '/m3', '/ok'], 0), \
         '/l1': (302, '/l2', 0.3), '/l2': (302, '/l1', 0.05), \
         '/m1': (302, '/m2', 0.3), '/m2': (302, '/m3', 0), '/m3': (302, '/m1', 0), \
         '/ok': (200, [], 0)}",
    );
    let got = crawl16(&s, "5");
    let paths: Vec<&str> = got.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        ["/", "/l1", "/l2", "/m1", "/m2", "/m3", "/ok"],
        "{got:?}"
    );
    let errs: Vec<(&str, &str)> = got
        .iter()
        .filter_map(|(p, e)| e.as_deref().map(|e| (p.as_str(), e)))
        .collect();
    assert_eq!(errs, [("/l1", "redirect"), ("/m2", "redirect")], "{got:?}");
}
