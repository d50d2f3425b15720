//! Probe round 21: behaviours from gevent's test files that earlier rounds
//! reached least, replayed through sylvan's API: `test__greenletset.py`
//! (`Group`), `test__local.py` (`greenlet_local!`), `lock_tests.py` as run
//! by `test__lock.py` / `test__semaphore.py` (`Semaphore`, `Mutex`),
//! `test__event.py`'s `AsyncResult` cases, `test__socket.py`,
//! `test__socket_timeout.py` and `test__server.py` (sockets and
//! `StreamServer`), `test__fileobject.py` and `test__subprocess.py`
//! (`sylvan::os::Fd`, `wait_child`). Each test names the gevent case it
//! comes from. Tests marked `#[ignore = "BUG: ..."]` show a sylvan bug and
//! fail without their `ignore`; the rest are regression tests. Every test
//! is bounded (`bounded`, socket timeouts, or a child process run under
//! `bounded`).

use std::cell::{Cell, RefCell};
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use sylvan::net::{StreamServer, TcpListener, TcpStream};
use sylvan::os::Fd;
use sylvan::pool::Group;
use sylvan::sync::{AsyncResult, Event, GetError, Mutex, Semaphore};
use sylvan::{killall, sleep, spawn, with_timeout, yield_now};

use crate::util::{Log, bounded, in_child, quiet, yield_until};

const MS: Duration = Duration::from_millis(1);

/// A member that catches every kill and goes back to sleep, counting the
/// shots, until `stop` is set (gevent's `Undead`).
fn undead(shots: Rc<Cell<u32>>, stop: Rc<Cell<bool>>) -> impl FnOnce() + 'static {
    move || {
        loop {
            let r = std::panic::catch_unwind(|| sleep(Duration::from_secs(3600)));
            if r.is_err() {
                shots.set(shots.get() + 1);
                if stop.get() {
                    return;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// test__greenletset.py: Group
// ---------------------------------------------------------------------------

// test__greenletset.Test.test_basic: a group's length drops as its members
// end, and the group is empty once the last one has.
#[test]
fn greenletset_basic_len_follows_members_ending() {
    bounded(|| {
        let group = Group::new();
        let first = Rc::new(Event::new());
        let second = Rc::new(Event::new());
        let (f, s) = (first.clone(), second.clone());
        group.spawn(move || {
            f.wait();
        });
        assert_eq!(group.len(), 1);
        group.spawn(move || {
            s.wait();
        });
        assert_eq!(group.len(), 2);
        yield_now();
        assert_eq!(group.len(), 2, "both parked, both members");
        first.set();
        yield_until("the first member left", || group.len() == 1);
        assert!(!group.is_empty());
        second.set();
        yield_until("the group emptied", || group.is_empty());
        assert_eq!(group.len(), 0);
    })
}

// test__greenletset.Test.test_waitall: join waits for the slowest member
// (about 2 x DELAY), then the group is empty.
#[test]
fn greenletset_waitall_join_returns_after_the_slowest() {
    bounded(|| {
        let group = Group::new();
        group.spawn(|| sleep(20 * MS));
        group.spawn(|| sleep(40 * MS));
        assert_eq!(group.len(), 2);
        let start = Instant::now();
        group.join();
        let took = start.elapsed();
        assert!(group.is_empty());
        assert!(took >= 38 * MS, "join returned after {took:?}");
        assert!(took < 1000 * MS, "join took {took:?}");
    })
}

// test__greenletset.Test.test_kill_block: kill of members sleeping a long
// time returns at once and leaves the group empty, their destructors run.
#[test]
fn greenletset_kill_block_is_prompt_and_empties_the_group() {
    bounded(|| {
        let group = Group::new();
        let drops = Rc::new(Cell::new(0));
        for i in 0..2u64 {
            let flag = crate::util::DropFlag(drops.clone());
            group.spawn(move || {
                let _flag = flag;
                sleep(Duration::from_secs(100 * (i + 1)));
            });
        }
        yield_now();
        assert_eq!(group.len(), 2);
        let start = Instant::now();
        group.kill();
        assert!(
            start.elapsed() < 500 * MS,
            "kill took {:?}",
            start.elapsed()
        );
        assert!(group.is_empty());
        assert_eq!(drops.get(), 2);
    })
}

// test__greenletset.Test.test_kill_fires_once: gevent's Group keeps the
// members it has shot in `self.dying` across calls, so killing the group
// again (blocking, under a timeout) does not throw into a member that
// caught the first kill: the shot counts stay (1, 1) and both are still in
// the group. sylvan's comment in `Core::kill` (hub/src/pool.rs) claims the
// same "dying set", but it lives only for one call.
#[test]
fn greenletset_kill_fires_once_across_calls() {
    bounded(|| {
        let group = Group::new();
        let stop = Rc::new(Cell::new(false));
        let (s1, s2) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let p1 = group.spawn(undead(s1.clone(), stop.clone()));
        let p2 = group.spawn(undead(s2.clone(), stop.clone()));
        yield_now();
        assert_eq!(group.len(), 2);
        let first = with_timeout(30 * MS, || group.kill());
        let after_first = (s1.get(), s2.get(), group.len());
        let second = with_timeout(30 * MS, || group.kill());
        let after_second = (s1.get(), s2.get(), group.len());
        // Clean up before asserting, whatever happened.
        stop.set(true);
        p1.kill();
        p2.kill();
        assert!(group.is_empty());
        assert!(first.is_err() && second.is_err(), "undead members survive");
        assert_eq!(after_first, (1, 1, 2));
        assert_eq!(
            after_second,
            (1, 1, 2),
            "a second Group::kill shot members already dying"
        );
    })
}

// test__greenletset.Test.test_killall_iterable_argument_timeout_not_started
// and ..._timeout_started: killall with a timeout of greenlets that would
// catch the kill and linger. Not started, they never run and die at once;
// started, they outlive the timeout (gevent raises Timeout; sylvan names
// them in `Survivors`) and are not dead, then end on their own.
#[test]
fn greenletset_killall_timeout_started_and_not_started() {
    bounded(|| {
        let lingering = || {
            spawn(|| {
                let r = std::panic::catch_unwind(|| sleep(Duration::from_secs(3600)));
                if r.is_err() {
                    sleep(150 * MS);
                }
                7
            })
        };
        let unstarted = vec![lingering(), lingering()];
        let start = Instant::now();
        assert_eq!(killall(&unstarted, Some(100 * MS)), Ok(()));
        // A lingering one would have made it Err(Survivors) at 100 ms.
        assert!(start.elapsed() < 1000 * MS);
        for g in unstarted {
            assert!(g.is_dead());
            assert!(g.join().unwrap_err().is_killed());
        }

        let started = vec![lingering(), lingering()];
        yield_now();
        let survivors = killall(&started, Some(30 * MS)).unwrap_err();
        let mut ids: Vec<_> = started.iter().map(|g| g.id()).collect();
        let mut got = survivors.0.clone();
        ids.sort_by_key(|i| i.as_u64());
        got.sort_by_key(|i| i.as_u64());
        assert_eq!(got, ids);
        assert!(started.iter().all(|g| !g.is_dead()));
        for g in started {
            assert_eq!(g.join().unwrap(), 7, "caught the kill and returned");
        }
    })
}

// ---------------------------------------------------------------------------
// test__local.py: greenlet_local!
// ---------------------------------------------------------------------------

thread_local! {
    static SENTINELS_MADE: Cell<u32> = const { Cell::new(0) };
    static SENTINELS_DROPPED: Cell<u32> = const { Cell::new(0) };
}

struct Sentinel;

impl Drop for Sentinel {
    fn drop(&mut self) {
        SENTINELS_DROPPED.with(|d| d.set(d.get() + 1));
    }
}

sylvan::greenlet_local! {
    static SENTINEL: Sentinel = {
        SENTINELS_MADE.with(|m| m.set(m.get() + 1));
        Sentinel
    };
    static PATH: RefCell<String> = RefCell::new(String::new());
    static OTHER_PATH: RefCell<String> = RefCell::new(String::new());
}

// test__local.TestGeventLocal.test_locals_collected_when_greenlet_dead_but_still_referenced
// (gevent issue 387): five greenlets each touch the local; once they are
// dead, all five values are gone although their handles are still held.
#[test]
fn local_values_of_dead_greenlets_go_while_their_handles_are_held() {
    bounded(|| {
        let made0 = SENTINELS_MADE.with(Cell::get);
        let dropped0 = SENTINELS_DROPPED.with(Cell::get);
        let greenlets: Vec<_> = (0..5).map(|_| spawn(|| SENTINEL.with(|_| ()))).collect();
        yield_until("the five ended", || greenlets.iter().all(|g| g.is_dead()));
        assert_eq!(SENTINELS_MADE.with(Cell::get) - made0, 5);
        assert_eq!(
            SENTINELS_DROPPED.with(Cell::get) - dropped0,
            5,
            "values of dead greenlets must not wait for their handles"
        );
        drop(greenlets);
        assert_eq!(SENTINELS_DROPPED.with(Cell::get) - dropped0, 5);
    })
}

// test__local.TestGeventLocal.test_attribute_error / test_slot_and_type_attributes:
// a value set in one greenlet is not seen by another, which starts from
// the initializer; main's value survives the other greenlet's changes.
#[test]
fn local_value_set_elsewhere_is_invisible_here() {
    bounded(|| {
        PATH.with(|p| *p.borrow_mut() = "main".into());
        let g = spawn(|| {
            let before = PATH.with(|p| p.borrow().clone());
            PATH.with(|p| *p.borrow_mut() = "child".into());
            yield_now();
            (before, PATH.with(|p| p.borrow().clone()))
        });
        yield_now();
        assert_eq!(PATH.with(|p| p.borrow().clone()), "main");
        let (before, after) = g.join().unwrap();
        assert_eq!(before, "", "a fresh value, not main's");
        assert_eq!(after, "child");
        assert_eq!(PATH.with(|p| p.borrow().clone()), "main");
    })
}

// test__local.TestGeventLocal.test_objects: two locals of the same type are
// independent, in main and in a greenlet.
#[test]
fn local_two_statics_of_one_type_are_independent() {
    bounded(|| {
        let check = || {
            PATH.with(|p| *p.borrow_mut() = "123".into());
            OTHER_PATH.with(|p| *p.borrow_mut() = "123".into());
            assert_eq!(PATH.with(|p| p.borrow().clone()), "123");
            OTHER_PATH.with(|p| *p.borrow_mut() = "321".into());
            (
                PATH.with(|p| p.borrow().clone()),
                OTHER_PATH.with(|p| p.borrow().clone()),
            )
        };
        assert_eq!(check(), ("123".to_string(), "321".to_string()));
        let g = spawn(check);
        assert_eq!(g.join().unwrap(), ("123".to_string(), "321".to_string()));
    })
}

// ---------------------------------------------------------------------------
// lock_tests.py as run by test__lock.py / test__semaphore.py
// ---------------------------------------------------------------------------

// lock_tests.SemaphoreTests.test_release_unacquired and
// test_acquire_contended: an unbounded semaphore may be released more
// often than acquired (the count grows), and contended acquirers get the
// permits one per release, in the order they came.
#[test]
fn semaphore_release_unacquired_and_contended_acquire() {
    bounded(|| {
        let sem = Rc::new(Semaphore::new(0));
        assert!(sem.try_acquire().is_none());
        sem.release();
        sem.release();
        assert_eq!(sem.available(), 2);
        let a = sem.acquire();
        let b = sem.try_acquire().expect("the second unacquired release");
        assert_eq!(sem.available(), 0);
        drop((a, b));
        assert_eq!(sem.available(), 2);
        let _held = (sem.acquire(), sem.acquire());

        let log = Log::default();
        let waiters: Vec<_> = (0..5)
            .map(|i| {
                let (sem, log) = (sem.clone(), log.clone());
                spawn(move || {
                    sem.acquire().forget();
                    log.push(format!("{i}"));
                })
            })
            .collect();
        yield_now();
        assert_eq!(sem.waiters(), 5);
        for n in 1..=5 {
            sem.release();
            yield_until("one more acquirer went", || log.get().len() == n);
            assert_eq!(log.get().len(), n, "one permit, one acquirer");
        }
        assert_eq!(log.take(), ["0", "1", "2", "3", "4"]);
        assert_eq!(sem.available(), 0);
        sylvan::joinall(&waiters, None);
    })
}

// lock_tests.BaseLockTests.test_try_acquire_contended and
// test_acquire_timeout: while one greenlet holds the lock, another's
// try_lock fails and lock_timeout gives up after about its timeout; once
// released, both succeed.
#[test]
fn mutex_try_lock_contended_from_another_greenlet() {
    bounded(|| {
        let m = Rc::new(Mutex::new(0u32));
        let guard = m.lock();
        let m2 = m.clone();
        let g = spawn(move || {
            let tried = m2.try_lock().is_none();
            let start = Instant::now();
            let timed = m2.lock_timeout(30 * MS).is_none();
            (tried, timed, start.elapsed())
        });
        let (tried, timed, took) = g.join().unwrap();
        assert!(tried, "try_lock while held must fail");
        assert!(timed, "lock_timeout while held must fail");
        assert!(took >= 28 * MS, "gave up after {took:?}");
        drop(guard);
        let m3 = m.clone();
        let g = spawn(move || {
            *m3.try_lock().expect("free now") += 1;
            *m3.lock_timeout(30 * MS).expect("free now") += 1;
        });
        g.join().unwrap();
        assert_eq!(*m.lock(), 2);
        assert!(!m.is_locked());
    })
}

// ---------------------------------------------------------------------------
// test__event.py: AsyncResult
// ---------------------------------------------------------------------------

// test__event.TestAsyncResult (test_set_exception, get with timeouts): before
// anything is stored, peek is None and get_timeout times out; after fail,
// every way of looking sees the failure (not a timeout), and a set is
// refused.
#[test]
fn async_result_failure_seen_by_every_accessor() {
    bounded(|| {
        let r: Rc<AsyncResult<u32, String>> = Rc::new(AsyncResult::new());
        assert_eq!(r.peek(), None);
        assert_eq!(r.is_ok(), None);
        assert!(!r.is_ready());
        let start = Instant::now();
        assert_eq!(r.get_timeout(20 * MS), Err(GetError::TimedOut));
        assert!(start.elapsed() >= 18 * MS);
        let getters: Vec<_> = (0..3)
            .map(|_| {
                let r = r.clone();
                spawn(move || r.get())
            })
            .collect();
        yield_now();
        assert_eq!(r.waiters(), 3);
        r.fail("boom".to_string()).unwrap();
        assert!(r.is_ready());
        assert_eq!(r.is_ok(), Some(false));
        assert_eq!(r.peek(), Some(Err(GetError::Failed("boom".to_string()))));
        assert_eq!(
            r.get_timeout(Duration::ZERO),
            Err(GetError::Failed("boom".to_string()))
        );
        assert!(r.wait_timeout(Duration::ZERO));
        assert!(r.set(1).is_err(), "set after fail is refused");
        for g in getters {
            assert_eq!(g.join().unwrap(), Err(GetError::Failed("boom".to_string())));
        }
        assert_eq!(r.waiters(), 0);
    })
}

// test__event.TestAsyncResult: a getter that timed out can get again, and
// gets the value set later.
#[test]
fn async_result_get_after_a_timed_out_get() {
    bounded(|| {
        let r: Rc<AsyncResult<String, String>> = Rc::new(AsyncResult::new());
        let r2 = r.clone();
        let g = spawn(move || {
            let first = r2.get_timeout(10 * MS);
            let second = r2.get();
            (first, second)
        });
        sleep(30 * MS);
        assert_eq!(r.waiters(), 1, "back in get after the timeout");
        r.set("late".into()).unwrap();
        let (first, second) = g.join().unwrap();
        assert_eq!(first, Err(GetError::TimedOut));
        assert_eq!(second, Ok("late".to_string()));
    })
}

// ---------------------------------------------------------------------------
// test__socket.py, test__socket_timeout.py, test__server.py
// ---------------------------------------------------------------------------

fn connected_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

/// Writes to `s` until the kernel takes no more (non-blocking), then puts
/// it back in blocking mode. Returns the bytes written.
fn fill_send_buffer(s: &TcpStream) -> usize {
    s.set_nonblocking(true).unwrap();
    let chunk = vec![0u8; 65536];
    let mut total = 0;
    loop {
        match (&*s).write(&chunk) {
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("filling the buffer: {e}"),
        }
    }
    s.set_nonblocking(false).unwrap();
    total
}

// test__socket.TestTCP.test_empty_send and test_sendall_empty_with_timeout
// (gevent issue 719): sending nothing on a socket with a timeout returns at
// once, even when the send buffer is full and a real send would wait.
#[test]
fn socket_empty_send_with_a_timeout_on_a_full_buffer_returns_at_once() {
    bounded(|| {
        let (client, _server) = connected_pair();
        assert!(fill_send_buffer(&client) > 0);
        client.set_write_timeout(Some(2000 * MS)).unwrap();
        let start = Instant::now();
        assert_eq!((&client).write(b"").unwrap(), 0);
        (&client).write_all(b"").unwrap();
        assert!(
            start.elapsed() < 500 * MS,
            "an empty send waited {:?}",
            start.elapsed()
        );
        // A real send would wait: more than the peer will ever take
        // (it never reads) times out.
        client.set_write_timeout(Some(30 * MS)).unwrap();
        let e = (&client).write_all(&vec![0u8; 64 << 20]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
    })
}

// test__socket.TestTCP.test_sendall_nonblocking (gunicorn issue 1282): on a
// non-blocking socket with room in its buffer, sendall makes its attempt and
// succeeds instead of failing at once; the peer reads every byte.
#[test]
fn socket_sendall_nonblocking_with_room_succeeds() {
    bounded(|| {
        let (client, server) = connected_pair();
        client.set_nonblocking(true).unwrap();
        (&client).write_all(b"hi\n").unwrap();
        drop(client);
        server.set_read_timeout(Some(2000 * MS)).unwrap();
        let mut got = Vec::new();
        (&server).read_to_end(&mut got).unwrap();
        assert_eq!(got, b"hi\n");
    })
}

// test__socket.TestTCP.test_sendall_str: the server greenlet reads until
// end of stream while the client sends long_data (", ".join(0..20000)),
// shuts down both directions and closes; every comma-separated piece
// arrives in order.
#[test]
fn socket_sendall_long_data_then_shutdown_reaches_a_reader_to_eof() {
    bounded(|| {
        let long_data = (0..20000)
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Rc::new(Event::new());
        let acc = accepted.clone();
        let server = spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            conn.set_read_timeout(Some(3000 * MS)).unwrap();
            acc.set();
            let mut got = Vec::new();
            (&conn).read_to_end(&mut got).map(|_| got)
        });
        let client = TcpStream::connect(addr).unwrap();
        assert!(accepted.wait_timeout(3000 * MS));
        (&client).write_all(long_data.as_bytes()).unwrap();
        client.shutdown(Shutdown::Both).unwrap();
        drop(client);
        let got = server.join().unwrap().unwrap();
        let got = String::from_utf8(got).unwrap();
        let pieces: Vec<&str> = got.split(',').collect();
        let want: Vec<&str> = long_data.split(',').collect();
        assert_eq!(pieces.len(), want.len());
        assert_eq!(pieces, want);
    })
}

// test__socket.TestTCP.test_fullduplex: a reader greenlet parked on a
// socket does not stop the same socket's writes, and a peer that reads
// while another of its greenlets sends 100,000 bytes does not hang.
#[test]
fn socket_fullduplex_reader_parked_while_the_socket_writes() {
    const N: usize = 100_000;
    bounded(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = spawn(move || {
            let (remote, _) = listener.accept().unwrap();
            remote.set_read_timeout(Some(3000 * MS)).unwrap();
            let remote = Rc::new(remote);
            let r2 = remote.clone();
            let sender = spawn(move || (&*r2).write_all(&vec![b't'; N]));
            let mut buf = [0u8; 11];
            (&*remote).read_exact(&mut buf).unwrap();
            sender.join().unwrap().unwrap();
            buf
        });
        let client = Rc::new(TcpStream::connect(addr).unwrap());
        client.set_read_timeout(Some(3000 * MS)).unwrap();
        let c2 = client.clone();
        let reader = spawn(move || {
            let mut got = vec![0u8; N];
            (&*c2).read_exact(&mut got).map(|_| got)
        });
        yield_now();
        (&*client).write_all(b"hello world").unwrap();
        assert_eq!(&server.join().unwrap(), b"hello world");
        let got = reader.join().unwrap().unwrap();
        assert!(got.iter().all(|&b| b == b't'));
    })
}

// test__socket_timeout.Test.test (and test__socket.TestTCP.test_recv_timeout):
// a recv with a timeout fails after about the timeout with a timeout error
// whose message says "timed out", as socket.timeout('timed out').
#[test]
fn socket_recv_timeout_kind_timing_and_message() {
    bounded(|| {
        let (client, _server) = connected_pair();
        client.set_read_timeout(Some(100 * MS)).unwrap();
        let start = Instant::now();
        let e = (&client).read(&mut [0u8; 1024]).unwrap_err();
        let took = start.elapsed();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
        assert!(e.to_string().contains("timed out"), "message: {e}");
        assert!(took >= 90 * MS && took < 1000 * MS, "took {took:?}");
    })
}

// test__server.TestDefaultSpawn.test_server_closes_client_sockets: when a
// handler returns, the server closes the connection it was given: a client
// sees what the handler wrote, then end of stream (a handler that writes
// nothing: end of stream at once).
#[test]
fn server_closes_the_client_socket_when_its_handler_returns() {
    bounded(|| {
        let server = StreamServer::bind("127.0.0.1:0", |conn: TcpStream, _peer| {
            let mut first = [0u8; 1];
            if (&conn).read(&mut first).unwrap_or(0) == 1 && first[0] == b'w' {
                let _ = (&conn).write_all(b"bye");
            }
        })
        .unwrap()
        .start()
        .unwrap();
        let addr = server.local_addr().unwrap();
        for (send, want) in [(&b"w"[..], &b"bye"[..]), (&b"n"[..], &b""[..])] {
            let c = TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(3000 * MS)).unwrap();
            (&c).write_all(send).unwrap();
            let mut got = Vec::new();
            (&c).read_to_end(&mut got).unwrap();
            assert_eq!(got, want);
        }
        yield_until("both handlers finished", || server.handlers() == 0);
        assert_eq!(server.accepted(), 2);
        server.stop(Some(1000 * MS));
    })
}

// test__server.TestDefaultSpawn.test_assertion_in_blocking_func: a handler
// that panics while the client waits closes that connection; the server
// keeps serving the next client.
#[test]
fn server_handler_panic_closes_its_connection_and_the_server_serves_on() {
    bounded(|| {
        quiet();
        let server = StreamServer::bind("127.0.0.1:0", |conn: TcpStream, _peer| {
            let mut b = [0u8; 1];
            (&conn).read_exact(&mut b).unwrap();
            assert!(b[0] != b'!', "asked to fail");
            (&conn).write_all(b"ok").unwrap();
        })
        .unwrap()
        .start()
        .unwrap();
        let addr = server.local_addr().unwrap();
        let bad = TcpStream::connect(addr).unwrap();
        bad.set_read_timeout(Some(3000 * MS)).unwrap();
        (&bad).write_all(b"!").unwrap();
        let mut got = Vec::new();
        assert!(
            matches!((&bad).read_to_end(&mut got), Ok(0)),
            "EOF, no data"
        );
        let good = TcpStream::connect(addr).unwrap();
        good.set_read_timeout(Some(3000 * MS)).unwrap();
        (&good).write_all(b"?").unwrap();
        let mut got = Vec::new();
        (&good).read_to_end(&mut got).unwrap();
        assert_eq!(got, b"ok");
        server.stop(Some(1000 * MS));
    })
}

// ---------------------------------------------------------------------------
// test__fileobject.py / test__subprocess.py: sylvan::os::Fd, wait_child
// ---------------------------------------------------------------------------

fn nonblocking(fd: RawFd) -> bool {
    // SAFETY: F_GETFL takes no argument and reads only the flags of `fd`.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    assert!(flags >= 0, "F_GETFL: {}", std::io::Error::last_os_error());
    flags & libc::O_NONBLOCK != 0
}

fn eventfd(flags: libc::c_int) -> OwnedFd {
    // SAFETY: eventfd takes an initial count and flags, returns a new fd.
    let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | flags) };
    assert!(raw >= 0, "eventfd: {}", std::io::Error::last_os_error());
    // SAFETY: just returned by the kernel, owned by nothing else.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

// test__fileobject (FileObjectPosix puts a descriptor in non-blocking mode
// for the hub and gives it back as it was) and `Fd`'s own doc: "dropping
// the Fd (or into_inner) deregisters it and restores the descriptor's
// original flags". Two *separate* eventfds, one blocking and one created
// non-blocking, wrapped at once: each must come back from `into_inner` in
// its own original mode. All eventfds share one anonymous inode, and `Fd`
// keys its flag bookkeeping by (device, inode, access mode)
// (hub/src/os.rs, `Key` / `WRAPPED`), so the two count as one description:
// the first given back stays non-blocking, and the second gets the first's
// flags (made blocking). Runs in a child: `WRAPPED` is process-wide.
#[test]
fn fd_two_eventfds_each_get_their_own_flags_back() {
    in_child(
        "probes21::fd_two_eventfds_each_get_their_own_flags_back",
        "p21_eventfd_flags",
        || {
            let blocking = eventfd(0);
            let nonblock = eventfd(libc::EFD_NONBLOCK);
            assert!(!nonblocking(blocking.as_raw_fd()));
            assert!(nonblocking(nonblock.as_raw_fd()));
            let fa = Fd::new(blocking).unwrap();
            let fb = Fd::new(nonblock).unwrap();
            assert!(nonblocking(fa.as_raw_fd()), "wrapped: non-blocking");
            let a = fa.into_inner();
            let a_nb = nonblocking(a.as_raw_fd());
            let b = fb.into_inner();
            let b_nb = nonblocking(b.as_raw_fd());
            assert_eq!(
                (a_nb, b_nb),
                (false, true),
                "(first eventfd non-blocking, second non-blocking) after into_inner"
            );
        },
    );
}

// test__fileobject.TestFileObjectBlock.test_close_pipe / test_read_eof: a
// greenlet parked reading a pipe gets the bytes written, then end of file
// when the write end is closed (dropped) by another greenlet.
#[test]
fn fd_pipe_reader_parked_gets_data_then_eof_when_the_writer_closes() {
    bounded(|| {
        let (r, w) = std::io::pipe().unwrap();
        let r = Fd::new(r).unwrap();
        let mut w = Fd::new(w).unwrap();
        let reader = spawn(move || {
            let mut got = Vec::new();
            let mut reads = 0;
            let mut buf = [0u8; 64];
            loop {
                let n = (&r).read(&mut buf).unwrap();
                reads += 1;
                if n == 0 {
                    return (got, reads);
                }
                got.extend_from_slice(&buf[..n]);
            }
        });
        yield_now();
        assert!(!reader.is_dead(), "parked on the empty pipe");
        w.write_all(b"x").unwrap();
        yield_now();
        assert!(!reader.is_dead(), "took the byte and parked again");
        drop(w);
        let (got, reads) = reader.join().unwrap();
        assert_eq!(got, b"x");
        assert!(reads >= 2);
    })
}

// test__fileobject (gevent's FileObjectPosix over a socket) through the
// calls no earlier test used: `read_with_mut` parks until the peer's
// `write_with_mut` lands, on a std Unix socket pair wrapped in `Fd`s.
#[test]
fn fd_read_with_mut_parks_until_write_with_mut_lands() {
    bounded(|| {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut fa = Fd::new(a).unwrap();
        let mut fb = Fd::new(b).unwrap();
        fa.set_read_timeout(Some(3000 * MS)).unwrap();
        let reader = spawn(move || {
            let mut buf = [0u8; 16];
            let n = fa.read_with_mut(|s| s.read(&mut buf)).unwrap();
            (buf[..n].to_vec(), fa)
        });
        yield_now();
        assert!(!reader.is_dead(), "parked in read_with_mut");
        let n = fb.write_with_mut(|s| s.write(b"ping")).unwrap();
        assert_eq!(n, 4);
        let (got, _fa) = reader.join().unwrap();
        assert_eq!(got, b"ping");
        // And a read_with_mut that finds nothing (the peer still open)
        // times out, as a socket's read does.
        fb.set_read_timeout(Some(20 * MS)).unwrap();
        let e = fb.read_with_mut(|s| s.read(&mut [0u8; 4])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
    })
}

// test__subprocess.TestPopen.test_communicate / test_exit_status: feed a
// child's stdin from one greenlet while reading all of its stdout in
// another, then wait for it: every byte back, its exit code, and other
// greenlets ran meanwhile.
#[test]
fn subprocess_communicate_through_fds_and_exit_status() {
    const SIZE: usize = 256 * 1024;
    bounded(|| {
        let mut child = Command::new("sh")
            .args(["-c", "cat; exit 3"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = Fd::new(child.stdin.take().unwrap()).unwrap();
        let mut stdout = Fd::new(child.stdout.take().unwrap()).unwrap();
        let ticks = Rc::new(Cell::new(0u32));
        let t = ticks.clone();
        let ticker = spawn(move || {
            loop {
                sleep(MS);
                t.set(t.get() + 1);
            }
        });
        let feeder = spawn(move || {
            let data: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
            stdin.write_all(&data).unwrap();
            // stdin dropped here: cat sees end of file
        });
        let mut got = Vec::new();
        stdout.read_to_end(&mut got).unwrap();
        feeder.join().unwrap();
        let status = sylvan::os::wait_child(&mut child).unwrap();
        ticker.kill();
        assert_eq!(got.len(), SIZE);
        assert!(got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
        assert_eq!(status.code(), Some(3));
        assert!(ticks.get() > 0, "the ticker ran while the child was served");
    })
}

// test__subprocess.TestPopen.test_wait_after_exit (Popen.wait on a child
// that has already exited returns its status at once, again and again).
#[test]
fn subprocess_wait_on_an_exited_child_returns_at_once_and_repeats() {
    bounded(|| {
        let mut child = Command::new("sh").args(["-c", "exit 5"]).spawn().unwrap();
        let first = sylvan::os::wait_child(&mut child).unwrap();
        assert_eq!(first.code(), Some(5));
        let start = Instant::now();
        let again = sylvan::os::wait_child(&mut child).unwrap();
        assert_eq!(again.code(), Some(5));
        assert!(start.elapsed() < 200 * MS);
    })
}
