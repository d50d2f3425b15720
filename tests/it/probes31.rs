//! Probe round 31: a hostile review of the fork change (the child's hub
//! makes an epoll and a waker of its own before its next poll or
//! registration and registers its sources again, gevent's `reinit`; signal
//! registrations get new pipes in a `pthread_atfork` child handler). Forks
//! from a greenlet and from a link callback; greenlets parked at the fork on
//! a timer, an `Event`, a `Queue`, a socket read and a socket write, on
//! `spawn_blocking`, on an `mpsc` receive; a `Handle` and `mpsc` senders
//! used by the child's own threads before and after its reinit; fork twice
//! (before and after the child reinitialised); sockets dropped in the child
//! before and after its first IO; the child ending through
//! `std::process::exit` (hub teardown) and through an unwinding main; a
//! `StreamServer` serving in parent and child on one listener; a `ureq`
//! agent's pooled keep-alive connection used in the child; `os::Fd` across
//! the fork (a parked reader, a child dropping its copy, an object replaced
//! through `get_mut`); signal handlers (several for one signal, dropped and
//! re-registered in the child, a signal sent to one process only); the
//! blocking detector across the fork; the blocking pool's idle threads; and
//! forks while another thread wakes the hub.
//!
//! Every forked child ends in `_exit` (or, for the exit test, in
//! `std::process::exit`) and is reaped under a time limit. Tests marked
//! `ignore = "BUG: ..."` fail without the `ignore`.

use std::cell::Cell;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::util::{HUNG, fork_child, in_child, loopback_echo, reap, reap_blocking, wait_for};

/// A loopback echo on this thread's hub (a listener and a connection made
/// now): true if it worked within a second.
fn echo_here() -> bool {
    sylvan::with_timeout(Duration::from_secs(1), || loopback_echo(b"echo"))
        .is_ok_and(|r| r.is_some())
}

/// A greenlet parked reading `a`: gets what arrives first.
fn parked_reader(a: Rc<sylvan::net::UnixStream>) -> sylvan::Greenlet<Vec<u8>> {
    let g = sylvan::spawn(move || {
        let mut buf = [0u8; 16];
        let n = (&*a).read(&mut buf).unwrap();
        buf[..n].to_vec()
    });
    sylvan::sleep(Duration::from_millis(2));
    assert!(!g.is_dead(), "the reader is parked");
    g
}

/// Writes `msg` to `b` and checks that the parked `reader` gets it: the
/// parent's registration survived whatever the child did.
fn parent_reader_still_woken(b: &sylvan::net::UnixStream, reader: sylvan::Greenlet<Vec<u8>>) {
    (&*b).write_all(b"p").unwrap();
    let got = sylvan::with_timeout(Duration::from_secs(2), || reader.join())
        .expect("the parent's reader was not woken after the fork")
        .unwrap();
    assert_eq!(got, b"p");
}

// ----- where the fork happens -------------------------------------------------

/// Forks from inside a greenlet and from inside a link callback (not from
/// main): the child does IO on the old hub and its timers run; the
/// parent's reader, parked before the fork, is still woken.
#[test]
fn fork_from_a_greenlet_and_from_a_link_callback() {
    in_child(
        "probes31::fork_from_a_greenlet_and_from_a_link_callback",
        "p31-fork-where",
        || {
            for from_link in [false, true] {
                let (a, b) = sylvan::net::UnixStream::pair().unwrap();
                let reader = parked_reader(Rc::new(a));
                let child = || {
                    if !echo_here() {
                        return 10;
                    }
                    let t = Instant::now();
                    sylvan::sleep(Duration::from_millis(5));
                    if t.elapsed() < Duration::from_millis(5) {
                        return 11;
                    }
                    // A greenlet spawned in the child runs and joins.
                    if sylvan::spawn(|| 5).join().ok() != Some(5) {
                        return 12;
                    }
                    0
                };
                let pid = Rc::new(Cell::new(0));
                let p2 = pid.clone();
                if from_link {
                    let g = sylvan::spawn(|| ());
                    g.link(move |_| p2.set(fork_child(child)));
                    let _ = g.join();
                    sylvan::sleep(Duration::from_millis(1));
                } else {
                    sylvan::spawn(move || p2.set(fork_child(child)))
                        .join()
                        .unwrap();
                }
                assert!(pid.get() > 0, "the fork ran");
                let code = reap(pid.get(), Duration::from_secs(3));
                assert_eq!(code, 0, "forked child (from_link={from_link}) failed");
                parent_reader_still_woken(&b, reader);
            }
        },
    );
}

// ----- greenlets parked at the fork -------------------------------------------

/// Greenlets parked on a timer, an `Event`, a `Queue`, a socket read and a
/// socket write (a full buffer) when the process forks all go on in the
/// child; the parent's own copies of the first three go on too (the parent
/// kills its socket greenlets so that only the child uses those sockets).
#[test]
fn greenlets_parked_on_timer_event_queue_and_both_socket_directions_go_on_in_the_child() {
    in_child(
        "probes31::greenlets_parked_on_timer_event_queue_and_both_socket_directions_go_on_in_the_child",
        "p31-parked",
        || {
            const BIG: usize = 1 << 20;
            let ev = Rc::new(sylvan::sync::Event::new());
            let q: Rc<sylvan::sync::Queue<u32>> = Rc::new(sylvan::sync::Queue::unbounded());
            let timer = sylvan::spawn(|| {
                sylvan::sleep(Duration::from_millis(40));
                1u32
            });
            let e2 = ev.clone();
            let waiter = sylvan::spawn(move || e2.wait());
            let q2 = q.clone();
            let getter = sylvan::spawn(move || q2.get());
            let (ra, rb) = sylvan::net::UnixStream::pair().unwrap();
            let reader = parked_reader(Rc::new(ra));
            let (wa, wb) = sylvan::net::UnixStream::pair().unwrap();
            let writer = sylvan::spawn(move || (&wa).write_all(&vec![1u8; BIG]).is_ok());
            sylvan::sleep(Duration::from_millis(5));
            assert!(!writer.is_dead(), "the writer is parked on a full buffer");
            let (mut go_tx, mut go_rx) = std::os::unix::net::UnixStream::pair().unwrap();
            let gs = std::cell::RefCell::new(Some((timer, waiter, getter, reader, writer)));
            let pid = fork_child(|| {
                let (timer, waiter, getter, reader, writer) = gs.borrow_mut().take().unwrap();
                let mut go = [0u8; 1];
                if go_rx.read_exact(&mut go).is_err() {
                    return 1;
                }
                ev.set();
                if q.put(7).is_err() {
                    return 2;
                }
                if (&rb).write_all(b"hi").is_err() {
                    return 3;
                }
                let drain = sylvan::spawn(move || {
                    let mut got = 0;
                    let mut buf = vec![0u8; 65536];
                    while got < BIG {
                        match (&wb).read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => got += n,
                        }
                    }
                    got
                });
                let all = sylvan::with_timeout(Duration::from_secs(3), || {
                    (
                        timer.join().ok(),
                        waiter.join().ok(),
                        getter.join().ok(),
                        reader.join().ok(),
                        writer.join().ok(),
                        drain.join().ok(),
                    )
                });
                match all {
                    Err(_) => 4,
                    Ok((Some(1), Some(true), Some(Some(7)), Some(r), Some(true), Some(BIG)))
                        if r == b"hi" =>
                    {
                        0
                    }
                    Ok(other) => {
                        eprintln!("child: {other:?}");
                        5
                    }
                }
            });
            let (timer, waiter, getter, reader, writer) = gs.borrow_mut().take().unwrap();
            // The socket greenlets are the child's from now on.
            reader.kill();
            writer.kill();
            go_tx.write_all(b"g").unwrap();
            ev.set();
            q.put(8).unwrap();
            let mine = sylvan::with_timeout(Duration::from_secs(2), || {
                (timer.join().ok(), waiter.join().ok(), getter.join().ok())
            })
            .expect("the parent's parked greenlets went on");
            assert_eq!(mine, (Some(1), Some(true), Some(Some(8))));
            let code = reap(pid, Duration::from_secs(4));
            assert_eq!(code, 0, "forked child failed");
        },
    );
}

// ----- the blocking pool --------------------------------------------------------

/// `spawn_blocking` in a child forked while the pool has an idle thread (the
/// parent ran a job before): the pool's state, copied into the child, counts
/// that thread as idle, so the job is handed to it (a condvar nobody waits
/// on in the child) and no thread is started. gevent's threadpool makes
/// itself anew in the child (`_on_fork`). The child's call must return.
#[test]
fn spawn_blocking_in_a_child_forked_while_the_pool_has_an_idle_thread() {
    in_child(
        "probes31::spawn_blocking_in_a_child_forked_while_the_pool_has_an_idle_thread",
        "p31-pool-idle",
        || {
            assert_eq!(sylvan::spawn_blocking(|| 1), 1);
            // The pool thread goes back to wait for work (idle) meanwhile.
            sylvan::sleep(Duration::from_millis(50));
            let pid = fork_child(|| {
                match sylvan::with_timeout(Duration::from_secs(2), || sylvan::spawn_blocking(|| 7))
                {
                    Ok(7) => 0,
                    Ok(_) => 1,
                    Err(_) => 2,
                }
            });
            let code = reap(pid, Duration::from_secs(4));
            assert_eq!(code, 0, "2 = the child's spawn_blocking never returned");
            assert_eq!(sylvan::spawn_blocking(|| 3), 3, "the parent's pool");
        },
    );
}

/// A greenlet parked on `spawn_blocking` at the fork: the parent gets its
/// result; in the child the job's thread is gone, so its copy waits (the
/// child gives up with a timeout), and the child's hub goes on: IO works
/// and a new `spawn_blocking` (the pool has no idle thread then) returns.
#[test]
fn a_greenlet_parked_on_spawn_blocking_at_the_fork() {
    in_child(
        "probes31::a_greenlet_parked_on_spawn_blocking_at_the_fork",
        "p31-pool-parked",
        || {
            let g = sylvan::spawn(|| {
                sylvan::spawn_blocking(|| {
                    std::thread::sleep(Duration::from_millis(150));
                    3
                })
            });
            sylvan::sleep(Duration::from_millis(10));
            let g = std::cell::RefCell::new(Some(g));
            let pid = fork_child(|| {
                let g = g.borrow_mut().take().unwrap();
                let r = sylvan::with_timeout(Duration::from_millis(400), || g.join());
                if r.is_ok() {
                    return 1;
                }
                if !echo_here() {
                    return 2;
                }
                match sylvan::with_timeout(Duration::from_secs(2), || sylvan::spawn_blocking(|| 5))
                {
                    Ok(5) => 0,
                    _ => 3,
                }
            });
            let g = g.borrow_mut().take().unwrap();
            let got = sylvan::with_timeout(Duration::from_secs(2), || g.join())
                .expect("the parent's job")
                .unwrap();
            assert_eq!(got, 3);
            let code = reap(pid, Duration::from_secs(4));
            assert_eq!(code, 0, "forked child failed");
        },
    );
}

// ----- other threads ------------------------------------------------------------

/// A greenlet parked on an `mpsc` receive at the fork, woken in the child by
/// a thread of the child (a clone of a sender kept by main) that sends
/// before the child's hub polled; a `Handle` taken before the fork spawns
/// on the child's hub from that thread; after the reinit, a thread sends
/// while the hub is parked (the new waker). The parent's receiver gets its
/// own thread's value.
#[test]
fn mpsc_and_handle_from_the_childs_threads_before_and_after_its_reinit() {
    in_child(
        "probes31::mpsc_and_handle_from_the_childs_threads_before_and_after_its_reinit",
        "p31-mpsc",
        || {
            let (tx, rx) = sylvan::mpsc::channel::<u32>();
            let recv = sylvan::spawn(move || rx.recv().ok());
            let handle = sylvan::Handle::current();
            sylvan::sleep(Duration::from_millis(2));
            let recv = std::cell::RefCell::new(Some(recv));
            let pid = fork_child(|| {
                let recv = recv.borrow_mut().take().unwrap();
                let (tx2, h2) = (tx.clone(), handle.clone());
                let flag = Arc::new(AtomicBool::new(false));
                let f2 = flag.clone();
                let sent = std::thread::spawn(move || {
                    tx2.send(5).is_ok()
                        && h2.spawn(move || f2.store(true, Ordering::SeqCst)).is_ok()
                })
                .join()
                .unwrap_or(false);
                if !sent {
                    return 1;
                }
                match sylvan::with_timeout(Duration::from_secs(2), || recv.join()) {
                    Ok(Ok(Some(5))) => {}
                    Ok(_) => return 2,
                    Err(_) => return 3,
                }
                let t = Instant::now();
                while !flag.load(Ordering::SeqCst) {
                    if t.elapsed() > Duration::from_secs(2) {
                        return 4;
                    }
                    sylvan::sleep(Duration::from_millis(1));
                }
                let (tx3, rx3) = sylvan::mpsc::channel::<u32>();
                let late = std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(30));
                    let _ = tx3.send(9);
                });
                let r = sylvan::with_timeout(Duration::from_secs(2), || rx3.recv());
                let _ = late.join();
                match r {
                    Ok(Ok(9)) => 0,
                    Ok(_) => 5,
                    Err(_) => 6,
                }
            });
            let tx4 = tx.clone();
            std::thread::spawn(move || tx4.send(1).unwrap())
                .join()
                .unwrap();
            let recv = recv.borrow_mut().take().unwrap();
            let got = sylvan::with_timeout(Duration::from_secs(2), || recv.join())
                .expect("the parent's receiver")
                .unwrap();
            assert_eq!(got, Some(1));
            let code = reap(pid, Duration::from_secs(4));
            assert_eq!(code, 0, "forked child failed");
        },
    );
}

/// Forks while another thread keeps waking the hub through its `Handle`
/// (`Remote::wake` locks the waker's mutex, new in this change, which the
/// child's `after_fork` then locks too). Only the forking thread survives a
/// fork: the mutex held by the waking thread at that instant stays held in
/// the child forever, and the child's first poll hangs (about 1 child in
/// 15 here; with `Handle::spawn` as well, which also locks the job queue,
/// 7 in 9). A pool thread finishing a job wakes the hub the same way.
/// Each child sleeps a millisecond (its first poll) and exits.
#[test]
fn forks_while_another_thread_wakes_the_hub() {
    in_child(
        "probes31::forks_while_another_thread_wakes_the_hub",
        "p31-wake-race",
        || {
            let handle = sylvan::Handle::current();
            let stop = Arc::new(AtomicBool::new(false));
            let s2 = stop.clone();
            let waker = std::thread::spawn(move || {
                while !s2.load(Ordering::Relaxed) {
                    handle.wake();
                }
            });
            let mut hung = 0;
            let mut failed = 0;
            let t = Instant::now();
            let mut forks = 0;
            while forks < 150 && t.elapsed() < Duration::from_millis(2500) {
                forks += 1;
                let pid = fork_child(|| {
                    sylvan::sleep(Duration::from_millis(1));
                    0
                });
                // Generous: a waker thread spins on the other core. A real
                // hang holds its lock for ever, so any bound catches it.
                match reap_blocking(pid, Duration::from_secs(3)) {
                    0 => {}
                    HUNG => hung += 1,
                    _ => failed += 1,
                }
                sylvan::yield_now();
            }
            stop.store(true, Ordering::Relaxed);
            waker.join().unwrap();
            assert_eq!(
                (hung, failed),
                (0, 0),
                "of {forks} children forked while a thread woke the hub: (hung, failed)"
            );
        },
    );
}

// ----- fork after fork ----------------------------------------------------------

/// The same hub reinitialised twice: a child forks a grandchild, once
/// after its own first IO (its hub already reinitialised) and once before
/// any (its hub never polled); the grandchild does IO on that hub, and the
/// child still does afterwards. The first parent's reader is still woken.
#[test]
fn grandchildren_of_one_hub_before_and_after_the_childs_reinit() {
    in_child(
        "probes31::grandchildren_of_one_hub_before_and_after_the_childs_reinit",
        "p31-twice",
        || {
            for io_first in [true, false] {
                let (a, b) = sylvan::net::UnixStream::pair().unwrap();
                let reader = parked_reader(Rc::new(a));
                let pid = fork_child(|| {
                    if io_first && !echo_here() {
                        return 10;
                    }
                    let grand = fork_child(|| {
                        if !echo_here() {
                            return 20;
                        }
                        let t = Instant::now();
                        sylvan::sleep(Duration::from_millis(5));
                        if t.elapsed() < Duration::from_millis(5) {
                            return 21;
                        }
                        0
                    });
                    let code = reap(grand, Duration::from_secs(3));
                    if code != 0 {
                        return 100 + code.clamp(-50, 50);
                    }
                    if !echo_here() {
                        return 30;
                    }
                    0
                });
                let code = reap(pid, Duration::from_secs(4));
                assert_eq!(code, 0, "child (io_first={io_first}) failed");
                parent_reader_still_woken(&b, reader);
            }
        },
    );
}

// ----- sockets dropped in the child -------------------------------------------

/// The child drops sockets the parent's greenlets are parked on: one
/// before its first IO (the shared epoll must be left alone), one after
/// (deregistered from the child's own epoll). Both parent readers are still
/// woken.
#[test]
fn sockets_dropped_in_the_child_before_and_after_its_first_io() {
    in_child(
        "probes31::sockets_dropped_in_the_child_before_and_after_its_first_io",
        "p31-drop",
        || {
            let (a1, b1) = sylvan::net::UnixStream::pair().unwrap();
            let (a2, b2) = sylvan::net::UnixStream::pair().unwrap();
            let (a1, a2) = (Rc::new(a1), Rc::new(a2));
            let r1 = parked_reader(a1.clone());
            let r2 = parked_reader(a2.clone());
            let pid = fork_child(|| {
                r1.kill();
                drop(a1);
                if !echo_here() {
                    return 1;
                }
                r2.kill();
                drop(a2);
                if !echo_here() {
                    return 2;
                }
                0
            });
            let code = reap(pid, Duration::from_secs(4));
            assert_eq!(code, 0, "forked child failed");
            parent_reader_still_woken(&b1, r1);
            parent_reader_still_woken(&b2, r2);
        },
    );
}

// ----- how the child ends -------------------------------------------------------

/// Tells a pipe when dropped (a greenlet's guard unwinding).
struct Tell(std::os::unix::net::UnixStream);

impl Drop for Tell {
    fn drop(&mut self) {
        let _ = self.0.write_all(b"d");
    }
}

/// The child ends through `std::process::exit` after its first IO, with
/// greenlets of its own parked (on a socket, a timer) and the parent's
/// reader copied in: the exit tears the child's hub down (each parked
/// greenlet unwinds, its guard tells the parent) and deregisters the
/// child's sockets from the child's epoll only. The parent's reader is
/// still woken.
#[test]
fn the_child_exiting_through_process_exit_tears_down_its_hub_only() {
    in_child(
        "probes31::the_child_exiting_through_process_exit_tears_down_its_hub_only",
        "p31-exit",
        || {
            let (a, b) = sylvan::net::UnixStream::pair().unwrap();
            let reader = parked_reader(Rc::new(a));
            let (tell_tx, mut tell_rx) = std::os::unix::net::UnixStream::pair().unwrap();
            // SAFETY: fork in a test child process; the forked child ends in
            // std::process::exit (the point of the test) or _exit.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0);
            if pid == 0 {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    if !echo_here() {
                        return 1;
                    }
                    let (c, d) = sylvan::net::UnixStream::pair().unwrap();
                    let t1 = Tell(tell_tx.try_clone().unwrap());
                    let _g1 = sylvan::spawn(move || {
                        let _t = t1;
                        let mut buf = [0u8; 1];
                        let _ = (&c).read(&mut buf);
                    });
                    let t2 = Tell(tell_tx.try_clone().unwrap());
                    let _g2 = sylvan::spawn(move || {
                        let _t = t2;
                        sylvan::sleep(Duration::from_secs(60));
                    });
                    sylvan::sleep(Duration::from_millis(5));
                    drop(d);
                    0
                }));
                match r {
                    Ok(0) => std::process::exit(0),
                    Ok(code) => {
                        // SAFETY: ends the forked child without unwinding.
                        unsafe { libc::_exit(code) }
                    }
                    // SAFETY: as above.
                    Err(_) => unsafe { libc::_exit(99) },
                }
            }
            drop(tell_tx);
            let code = reap(pid, Duration::from_secs(4));
            assert_eq!(code, 0, "forked child failed");
            tell_rx
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            let mut told = Vec::new();
            let _ = tell_rx.read_to_end(&mut told);
            assert_eq!(told, b"dd", "the child's parked greenlets unwound at exit");
            parent_reader_still_woken(&b, reader);
        },
    );
}

/// The child's main unwinds (a panic, caught at the bottom of the child)
/// out of frames that own sockets, greenlets and a signal handler made
/// before and after the fork; the child's hub goes on (IO after the
/// unwind), and the parent's reader is still woken.
#[test]
fn the_childs_main_unwinding_leaves_the_parent_alone() {
    in_child(
        "probes31::the_childs_main_unwinding_leaves_the_parent_alone",
        "p31-unwind",
        || {
            let (a, b) = sylvan::net::UnixStream::pair().unwrap();
            let a = Rc::new(a);
            let reader = parked_reader(a.clone());
            let h = sylvan::signal(libc::SIGUSR1, || ()).unwrap();
            let pid = fork_child(|| {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let _a = a;
                    let _h = h;
                    let l = sylvan::net::TcpListener::bind("127.0.0.1:0").unwrap();
                    let _acceptor = sylvan::spawn(move || l.accept().map(|_| ()));
                    sylvan::sleep(Duration::from_millis(2));
                    panic!("p31: the child's main unwinds");
                }));
                if r.is_ok() {
                    return 1;
                }
                if !echo_here() {
                    return 2;
                }
                0
            });
            let code = reap(pid, Duration::from_secs(4));
            assert_eq!(code, 0, "forked child failed");
            parent_reader_still_woken(&b, reader);
        },
    );
}

// ----- servers and clients ------------------------------------------------------

/// A `StreamServer` started before the fork serves in the parent and the
/// child at once: every connection of a client thread is answered exactly
/// once (one byte naming the process), and all are answered.
#[test]
fn a_stream_server_in_parent_and_child_answers_each_connection_once() {
    in_child(
        "probes31::a_stream_server_in_parent_and_child_answers_each_connection_once",
        "p31-server",
        || {
            const N: usize = 60;
            let tag = Rc::new(Cell::new(b'P'));
            let t2 = tag.clone();
            let l = sylvan::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let server = sylvan::net::StreamServer::new(l, move |s, _| {
                let mut b = [0u8; 1];
                (&s).read_exact(&mut b)?;
                (&s).write_all(&[t2.get()])
            })
            .start()
            .unwrap();
            sylvan::sleep(Duration::from_millis(2));
            let (stop_a, stop_b) = sylvan::net::UnixStream::pair().unwrap();
            let pid = fork_child(|| {
                tag.set(b'C');
                let mut b = [0u8; 1];
                let r = sylvan::with_timeout(Duration::from_secs(4), || (&stop_b).read(&mut b));
                match r {
                    Ok(Ok(1)) => 0,
                    _ => 1,
                }
            });
            let client = std::thread::spawn(move || {
                let mut answers = Vec::new();
                for _ in 0..N {
                    let one = (|| -> std::io::Result<Vec<u8>> {
                        let mut s = std::net::TcpStream::connect(addr)?;
                        s.set_read_timeout(Some(Duration::from_secs(2)))?;
                        s.write_all(b"x")?;
                        let mut got = Vec::new();
                        s.read_to_end(&mut got)?;
                        Ok(got)
                    })();
                    answers.push(one.map_err(|e| e.to_string()));
                    std::thread::sleep(Duration::from_millis(2));
                }
                answers
            });
            let t = Instant::now();
            while !client.is_finished() && t.elapsed() < Duration::from_secs(4) {
                sylvan::sleep(Duration::from_millis(1));
            }
            (&stop_a).write_all(b"s").unwrap();
            let code = reap(pid, Duration::from_secs(3));
            let answers = client.join().unwrap();
            let (p, c) = (
                answers.iter().filter(|a| a.as_deref() == Ok(b"P")).count(),
                answers.iter().filter(|a| a.as_deref() == Ok(b"C")).count(),
            );
            eprintln!("p31-server: parent {p}, child {c}");
            assert_eq!(p + c, N, "answers: {answers:?}");
            assert_eq!(code, 0, "forked child failed");
            drop(server);
        },
    );
}

/// A tiny keep-alive HTTP/1.1 server on a plain thread: answers each
/// request with a body naming its connection and request number there;
/// ends when `stop` is set (it polls).
fn keepalive_server(stop: Arc<AtomicBool>) -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    l.set_nonblocking(true).unwrap();
    let t = std::thread::spawn(move || {
        let conns = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            while !stop.load(Ordering::SeqCst) {
                let Ok((s, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                };
                let n = conns.fetch_add(1, Ordering::SeqCst) + 1;
                let stop = stop.clone();
                scope.spawn(move || {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                    let mut buf = Vec::new();
                    let mut req = 0;
                    let mut chunk = [0u8; 1024];
                    while !stop.load(Ordering::SeqCst) {
                        match (&s).read(&mut chunk) {
                            Ok(0) => return,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                            Err(_) => continue,
                        }
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            req += 1;
                            let body = format!("conn {n} req {req}");
                            let resp = format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if (&s).write_all(resp.as_bytes()).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
    });
    (addr, t)
}

/// A `sylvan::ureq` agent with a pooled keep-alive connection made before
/// the fork, used in the child (the parent idle meanwhile), then by the
/// parent again: each request gets its own answer on the reused connection.
#[test]
fn a_ureq_agents_pooled_connection_used_in_the_child() {
    use sylvan::ureq::ureq;
    in_child(
        "probes31::a_ureq_agents_pooled_connection_used_in_the_child",
        "p31-ureq",
        || {
            let stop = Arc::new(AtomicBool::new(false));
            let (addr, server) = keepalive_server(stop.clone());
            let agent = sylvan::ureq::agent(
                ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_secs(2)))
                    .build(),
            );
            let url = format!("http://{addr}/");
            let get = |agent: &ureq::Agent| -> Result<String, String> {
                let mut res = agent.get(&url).call().map_err(|e| e.to_string())?;
                res.body_mut().read_to_string().map_err(|e| e.to_string())
            };
            assert_eq!(get(&agent).as_deref(), Ok("conn 1 req 1"));
            let pid = fork_child(|| match get(&agent) {
                Ok(body) if body == "conn 1 req 2" => 0,
                Ok(body) => {
                    eprintln!("child got {body:?}");
                    1
                }
                Err(e) => {
                    eprintln!("child failed: {e}");
                    2
                }
            });
            let code = reap(pid, Duration::from_secs(4));
            assert_eq!(code, 0, "forked child failed");
            assert_eq!(get(&agent).as_deref(), Ok("conn 1 req 3"));
            stop.store(true, Ordering::SeqCst);
            server.join().unwrap();
        },
    );
}

// ----- os::Fd -----------------------------------------------------------------

/// An `os::Fd` pipe reader with a greenlet parked on it at the fork reads in
/// the child (the parent kills its copy); the parent's descriptor is still
/// non-blocking afterwards (the child ended in `_exit`).
#[test]
fn an_os_fd_reader_parked_at_the_fork_reads_in_the_child() {
    in_child(
        "probes31::an_os_fd_reader_parked_at_the_fork_reads_in_the_child",
        "p31-fd",
        || {
            let (r, mut w) = std::io::pipe().unwrap();
            let fd = Rc::new(sylvan::os::Fd::new(r).unwrap());
            let raw = fd.get_ref().as_raw_fd();
            let f2 = fd.clone();
            let reader = sylvan::spawn(move || {
                let mut buf = [0u8; 8];
                let n = (&*f2).read(&mut buf).unwrap();
                buf[..n].to_vec()
            });
            sylvan::sleep(Duration::from_millis(2));
            let (mut go_tx, mut go_rx) = std::os::unix::net::UnixStream::pair().unwrap();
            let reader = std::cell::RefCell::new(Some(reader));
            let pid = fork_child(|| {
                let reader = reader.borrow_mut().take().unwrap();
                let mut go = [0u8; 1];
                if go_rx.read_exact(&mut go).is_err() || w.write_all(b"fd").is_err() {
                    return 1;
                }
                match sylvan::with_timeout(Duration::from_secs(2), || reader.join()) {
                    Ok(Ok(v)) if v == b"fd" => 0,
                    Ok(_) => 2,
                    Err(_) => 3,
                }
            });
            reader.borrow_mut().take().unwrap().kill();
            go_tx.write_all(b"g").unwrap();
            let code = reap(pid, Duration::from_secs(4));
            assert_eq!(code, 0, "forked child failed");
            // SAFETY: F_GETFL only reads the flags of our open descriptor.
            let flags = unsafe { libc::fcntl(raw, libc::F_GETFL) };
            assert_ne!(
                flags & libc::O_NONBLOCK,
                0,
                "the parent's Fd is non-blocking"
            );
            drop(fd);
        },
    );
}

/// A forked child dropping its copy of an `os::Fd` (as a worker's cleanup
/// or its exit teardown does) restores the descriptor's original flags:
/// the child's `Fd` count is its own, so it is "the last", but the flags
/// belong to the open file description, which the parent's `Fd` still
/// uses. The parent's descriptor turns blocking under its hub: its next
/// read with the pipe empty blocks the whole thread. gevent leaves a
/// wrapped descriptor non-blocking.
#[test]
fn a_child_dropping_an_inherited_os_fd_leaves_the_parents_non_blocking() {
    in_child(
        "probes31::a_child_dropping_an_inherited_os_fd_leaves_the_parents_non_blocking",
        "p31-fd-drop",
        || {
            let (r, _w) = std::io::pipe().unwrap();
            let fd = sylvan::os::Fd::new(r).unwrap();
            let raw = fd.get_ref().as_raw_fd();
            let fd = std::cell::RefCell::new(Some(fd));
            let pid = fork_child(|| {
                drop(fd.borrow_mut().take());
                0
            });
            let code = reap(pid, Duration::from_secs(4));
            assert_eq!(code, 0, "forked child failed");
            // SAFETY: F_GETFL only reads the flags of our open descriptor.
            let flags = unsafe { libc::fcntl(raw, libc::F_GETFL) };
            assert_ne!(
                flags & libc::O_NONBLOCK,
                0,
                "the parent's live Fd was made blocking by the child's drop"
            );
        },
    );
}

/// An `os::Fd` whose object was replaced through `get_mut` (documented as
/// wrong but safe: "dropping such an Fd touches neither the replacement
/// nor a file that took the old descriptor number"), its old number then
/// taken by a socket: in the child, `Io::reinit` registers every slot by
/// its recorded number, so the stale slot and the socket both claim that
/// number (EEXIST), `after_fork` fails and the child's hub panics on its
/// first poll ("making the forked child's poller failed"). The child
/// should carry on (IO and timers), as the parent does.
#[test]
fn a_replaced_os_fd_object_does_not_break_the_childs_reinit() {
    in_child(
        "probes31::a_replaced_os_fd_object_does_not_break_the_childs_reinit",
        "p31-fd-stale",
        || {
            let (r1, _w1) = std::io::pipe().unwrap();
            let (r2, _w2) = std::io::pipe().unwrap();
            let mut fd = sylvan::os::Fd::new(r1).unwrap();
            let old = fd.get_ref().as_raw_fd();
            *fd.get_mut() = r2; // closes `old`
            let (a, b) = sylvan::net::UnixStream::pair().unwrap();
            let reuse = a.as_raw_fd() == old || b.as_raw_fd() == old;
            eprintln!("p31-fd-stale: old number {old} reused by a socket: {reuse}");
            let pid = fork_child(|| {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    sylvan::with_timeout(Duration::from_secs(1), || {
                        (&a).write_all(b"z").ok()?;
                        let mut buf = [0u8; 1];
                        (&b).read_exact(&mut buf).ok()?;
                        sylvan::sleep(Duration::from_millis(2));
                        Some(buf)
                    })
                }));
                match r {
                    Ok(Ok(Some(buf))) if &buf == b"z" => {
                        if echo_here() {
                            0
                        } else {
                            3
                        }
                    }
                    Ok(_) => 1,
                    Err(p) => {
                        eprintln!("child panicked: {}", sylvan::runtime::payload_message(&*p));
                        2
                    }
                }
            });
            let code = reap(pid, Duration::from_secs(4));
            assert_eq!(code, 0, "forked child failed (2 = its hub panicked)");
            assert!(echo_here(), "the parent");
            drop(fd);
        },
    );
}

// ----- signals ----------------------------------------------------------------

/// Two handlers for one signal registered before the fork. The child drops
/// the first and registers another; the parent then signals itself only
/// (both its handlers run once, none of the child's), and the child signals
/// itself only (its two live handlers run once, the dropped one never, and
/// none of the parent's). Afterwards the parent's handlers still run.
#[test]
fn signal_handlers_dropped_and_re_registered_in_the_child() {
    in_child(
        "probes31::signal_handlers_dropped_and_re_registered_in_the_child",
        "p31-signal",
        || {
            let counter = |c: &Rc<Cell<u32>>| {
                let c = c.clone();
                move || c.set(c.get() + 1)
            };
            let (c1, c2, c4) = (
                Rc::new(Cell::new(0)),
                Rc::new(Cell::new(0)),
                Rc::new(Cell::new(0)),
            );
            let h1 = sylvan::signal(libc::SIGUSR1, counter(&c1)).unwrap();
            let h2 = sylvan::signal(libc::SIGUSR1, counter(&c2)).unwrap();
            let (mut p_end, mut c_end) = std::os::unix::net::UnixStream::pair().unwrap();
            let h1 = std::cell::RefCell::new(Some(h1));
            let pid = fork_child(|| {
                drop(h1.borrow_mut().take());
                let _h4 = sylvan::signal(libc::SIGUSR1, counter(&c4)).unwrap();
                c_end
                    .set_read_timeout(Some(Duration::from_secs(3)))
                    .unwrap();
                let mut go = [0u8; 1];
                if c_end.write_all(b"r").is_err() || c_end.read_exact(&mut go).is_err() {
                    return 1;
                }
                // The parent's signal has run the parent's handlers by now.
                for _ in 0..100 {
                    sylvan::sleep(Duration::from_millis(1));
                }
                if (c1.get(), c2.get(), c4.get()) != (0, 0, 0) {
                    eprintln!(
                        "child ran {:?} for the parent's signal",
                        (c1.get(), c2.get(), c4.get())
                    );
                    return 2;
                }
                // SAFETY: signals this process, which handles SIGUSR1.
                unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
                if !wait_for(Duration::from_secs(2), || c2.get() > 0 && c4.get() > 0) {
                    eprintln!("child: {:?}", (c1.get(), c2.get(), c4.get()));
                    return 3;
                }
                sylvan::sleep(Duration::from_millis(30));
                match (c1.get(), c2.get(), c4.get()) {
                    (0, 1, 1) => 0,
                    other => {
                        eprintln!("child: {other:?}");
                        4
                    }
                }
            });
            p_end
                .set_read_timeout(Some(Duration::from_secs(3)))
                .unwrap();
            let mut ready = [0u8; 1];
            p_end.read_exact(&mut ready).unwrap();
            // SAFETY: signals this process, which handles SIGUSR1.
            unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
            assert!(
                wait_for(Duration::from_secs(2), || c1.get() > 0 && c2.get() > 0),
                "the parent's handlers after the child dropped one: {:?}",
                (c1.get(), c2.get())
            );
            sylvan::sleep(Duration::from_millis(30));
            assert_eq!((c1.get(), c2.get(), c4.get()), (1, 1, 0));
            p_end.write_all(b"g").unwrap();
            let code = reap(pid, Duration::from_secs(4));
            sylvan::sleep(Duration::from_millis(30));
            assert_eq!(
                (c1.get(), c2.get(), c4.get()),
                (1, 1, 0),
                "the child's signal ran the parent's handlers"
            );
            assert_eq!(code, 0, "forked child failed");
            // SAFETY: as above.
            unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
            assert!(wait_for(Duration::from_secs(2), || c1.get() == 2 && c2.get() == 2));
            drop(h1);
            drop(h2);
        },
    );
}

// ----- the blocking detector --------------------------------------------------

static REPORTS: AtomicUsize = AtomicUsize::new(0);

/// A `BlockingDetector` started before the fork: its watchdog thread does
/// not survive the fork, so a stall of the child's hub is never reported,
/// though the child holds a live detector (gevent's monitoring thread
/// starts again in the child, `_on_fork`). The parent's still reports.
#[test]
#[ignore = "LIMIT: a BlockingDetector started before fork does not watch the child (its thread is gone; documented: start one in the child)"]
fn a_blocking_detector_started_before_the_fork_reports_in_the_child() {
    in_child(
        "probes31::a_blocking_detector_started_before_the_fork_reports_in_the_child",
        "p31-detector",
        || {
            let _d = sylvan::BlockingDetector::with_callback(Duration::from_millis(50), |_| {
                REPORTS.fetch_add(1, Ordering::SeqCst);
            });
            sylvan::sleep(Duration::from_millis(5));
            let pid = fork_child(|| {
                let before = REPORTS.load(Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(300));
                sylvan::sleep(Duration::from_millis(50));
                if REPORTS.load(Ordering::SeqCst) > before {
                    0
                } else {
                    1
                }
            });
            let code = reap(pid, Duration::from_secs(4));
            let before = REPORTS.load(Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(300));
            sylvan::sleep(Duration::from_millis(50));
            assert!(
                REPORTS.load(Ordering::SeqCst) > before,
                "the parent's detector reports"
            );
            assert_eq!(code, 0, "1 = the child's stall was never reported");
        },
    );
}

/// A `BlockingDetector` started in the child (a new watchdog thread)
/// reports the child's stall; the parent's detector is not disturbed.
#[test]
fn a_blocking_detector_started_in_the_child_reports_there() {
    in_child(
        "probes31::a_blocking_detector_started_in_the_child_reports_there",
        "p31-detector-child",
        || {
            let _d = sylvan::BlockingDetector::with_callback(Duration::from_millis(50), |_| {
                REPORTS.fetch_add(1, Ordering::SeqCst);
            });
            sylvan::sleep(Duration::from_millis(5));
            let pid = fork_child(|| {
                let _mine =
                    sylvan::BlockingDetector::with_callback(Duration::from_millis(50), |_| {
                        REPORTS.fetch_add(100, Ordering::SeqCst);
                    });
                sylvan::sleep(Duration::from_millis(5));
                let before = REPORTS.load(Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(300));
                sylvan::sleep(Duration::from_millis(50));
                if REPORTS.load(Ordering::SeqCst) >= before + 100 {
                    0
                } else {
                    1
                }
            });
            let code = reap(pid, Duration::from_secs(4));
            assert_eq!(code, 0, "the child's own detector did not report");
            let before = REPORTS.load(Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(300));
            sylvan::sleep(Duration::from_millis(50));
            let after = REPORTS.load(Ordering::SeqCst);
            assert!(
                after > before && after < before + 100,
                "the parent's detector"
            );
        },
    );
}
