//! Socket traces checked against gevent 26.9.0 (greenlet 3.5.6, CPython
//! 3.11.7). Each test replays the script of the same number in
//! `tests/it/gevent_traces/net_NN_*.py`, which appends strings to a list
//! and prints it on one line (each printed the same trace in repeated
//! runs), and asserts that sylvan records the same events in the same
//! order. Python's spellings are translated the Rust way: an exception
//! class is the `io::ErrorKind` it maps to (`ConnectionResetError` is
//! `ConnectionReset`, `FileNotFoundError` `NotFound`, `socket.timeout`
//! `TimedOut`), `b'..'` byte strings are kept, and a `GreenletExit` is a
//! kill unwinding the greenlet (a guard's drop stands for `finally`/
//! `except GreenletExit`). `gevent.sleep(0)` is `yield_now()`.
//!
//! Where sylvan documents a deliberate difference, the test asserts
//! sylvan's documented trace and quotes gevent's. The round found five
//! undocumented differences, none a hang, lost data or a wrong error kind:
//! n17 and n19 are now documented and pinned; n20 (a connect right after
//! the last server handle was dropped got through) was fixed; n29 and
//! n29b (the order of readers woken by one poll, an artifact of libev)
//! now check only that both readers run.

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sylvan::net::{StreamServer, TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use sylvan::pool::Pool;
use sylvan::{joinall, sleep, spawn, with_timeout, yield_now};

use crate::net_peers::set_linger_zero;
use crate::util::{Log, bounded, first_error, quiet, tcp_pair};

const MS: Duration = Duration::from_millis(1);

/// Pushes its text when dropped: a Python `finally:`.
struct Fin(Log, String);

impl Drop for Fin {
    fn drop(&mut self) {
        self.0.push(std::mem::take(&mut self.1));
    }
}

/// Pushes its text when dropped by an unwind (a kill): Python's
/// `except GreenletExit:`.
struct OnKill(Log, String);

impl Drop for OnKill {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.push(std::mem::take(&mut self.1));
        }
    }
}

/// Python's repr of a byte string (ASCII here).
fn b(bytes: &[u8]) -> String {
    format!("b'{}'", String::from_utf8_lossy(bytes))
}

fn kind(e: &io::Error) -> String {
    format!("{:?}", e.kind())
}

fn py(v: bool) -> &'static str {
    if v { "True" } else { "False" }
}

/// Reads once into a buffer of `n` bytes: `b'..'` or the error's kind.
fn rd(mut s: &TcpStream, n: usize) -> String {
    let mut buf = vec![0; n];
    match s.read(&mut buf) {
        Ok(k) => b(&buf[..k]),
        Err(e) => kind(&e),
    }
}

fn check(log: &Log, gevent: &[&str]) {
    assert_eq!(log.get(), gevent);
}

fn listener() -> Rc<TcpListener> {
    Rc::new(TcpListener::bind("127.0.0.1:0").unwrap())
}

/// Sets the listen backlog of `l` to 0, as Python's `listen(0)` (Linux
/// lets `listen` be called again to change it): one queued connection
/// fills it, and the kernel then drops SYNs, so a connect waits.
fn backlog_zero(l: &TcpListener) {
    // SAFETY: listen(2) on the listener's open descriptor.
    assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 0) }, 0);
}

/// A port that nobody listens on (a listener bound and dropped).
fn dead_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

// ---------------------------------------------------------------- accept

// net_01_accept_waiters_order.py (gevent 26.9.0) printed
//   ['a1 ConcurrentObjectUseError', 'a2 ConcurrentObjectUseError',
//    'a0 got 0', 'dead=[True, True, True]']
// gevent refuses a second greenlet waiting on one socket. sylvan serves
// them in the order they parked, as its docs say (`sylvan::net`, "Several
// greenlets, one socket, one direction: served in order ... gevent raises
// `ConcurrentObjectUseError` instead; here accept loops sharing a listener
// ... just work"): the documented trace is asserted.
#[test]
fn n01_accept_waiters_served_in_park_order() {
    bounded(|| {
        let l = Log::default();
        let lis = listener();
        let addr = lis.local_addr().unwrap();
        let gs: Vec<_> = (0..3)
            .map(|i| {
                let (lis, l) = (lis.clone(), l.clone());
                spawn(move || {
                    let (c, _) = lis.accept().unwrap();
                    l.push(format!("a{i} got {}", rd(&c, 1).trim_matches(['b', '\''])));
                })
            })
            .collect();
        yield_now();
        let mut cs = Vec::new();
        for i in 0..3 {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(i.to_string().as_bytes()).unwrap();
            cs.push(c);
            sleep(20 * MS);
        }
        sylvan::joinall(&gs, Some(Duration::from_secs(1)));
        let dead: Vec<_> = gs.iter().map(|g| py(g.is_dead())).collect();
        l.push(format!("dead=[{}]", dead.join(", ")));
        check(
            &l,
            &[
                "a0 got 0",
                "a1 got 1",
                "a2 got 2",
                "dead=[True, True, True]",
            ],
        );
    })
}

// net_10_accept_killed_then_next.py (gevent 26.9.0):
//   ['acceptor killed', 'kill returned', 'accept timed out',
//    'then accepted hi']
#[test]
fn n10_accept_killed_or_timed_out_leaves_the_listener_usable() {
    bounded(|| {
        let l = Log::default();
        let lis = listener();
        let (lis2, l2) = (lis.clone(), l.clone());
        let g = spawn(move || {
            let _k = OnKill(l2.clone(), "acceptor killed".into());
            let _ = lis2.accept();
            l2.push("accepted?!");
        });
        yield_now();
        g.kill();
        l.push("kill returned");
        if with_timeout(50 * MS, || lis.accept()).is_err() {
            l.push("accept timed out");
        }
        let mut c = TcpStream::connect(lis.local_addr().unwrap()).unwrap();
        c.write_all(b"hi").unwrap();
        let (s, _) = lis.accept().unwrap();
        l.push(format!("then accepted {}", rd(&s, 2)));
        check(
            &l,
            &[
                "acceptor killed",
                "kill returned",
                "accept timed out",
                "then accepted b'hi'",
            ],
        );
    })
}

// net_27_backlog_accept_order.py (gevent 26.9.0):
//   ["accepted c0 then b'-'", "accepted c1 then b''", "accepted c2 then b'-'"]
#[test]
fn n27_queued_connections_are_accepted_in_connect_order_with_their_fin() {
    bounded(|| {
        let l = Log::default();
        let lis = listener();
        let mut cs: Vec<Option<TcpStream>> = Vec::new();
        for i in 0..3 {
            let mut c = TcpStream::connect(lis.local_addr().unwrap()).unwrap();
            c.write_all(format!("c{i}").as_bytes()).unwrap();
            cs.push(Some(c));
        }
        cs[1] = None;
        for i in 0..3 {
            let (s, _) = lis.accept().unwrap();
            let a = rd(&s, 10);
            let second = if i == 1 { rd(&s, 10) } else { "b'-'".into() };
            l.push(format!(
                "accepted {} then {second}",
                a.trim_matches(['b', '\''])
            ));
        }
        check(
            &l,
            &[
                "accepted c0 then b'-'",
                "accepted c1 then b''",
                "accepted c2 then b'-'",
            ],
        );
    })
}

// net_31_listener_closed_with_backlog.py (gevent 26.9.0):
//   ['recv ConnectionResetError', "recv b''"]
#[test]
fn n31_listener_closed_with_a_queued_connection_resets_it() {
    bounded(|| {
        let l = Log::default();
        let lis = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = TcpStream::connect(lis.local_addr().unwrap()).unwrap();
        c.write_all(b"hello").unwrap();
        sleep(10 * MS);
        drop(lis);
        for _ in 0..2 {
            l.push(format!("recv {}", rd(&c, 10)));
        }
        check(&l, &["recv ConnectionReset", "recv b''"]);
    })
}

// net_34_accept_vs_connect_order.py (gevent 26.9.0):
//   ['server accepting', 'client connecting', 'client connected',
//    'client sent', 'server accepted', 'server read ping', 'server sent',
//    'client read pong']
#[test]
fn n34_accept_and_connect_interleave_as_in_gevent() {
    bounded(|| {
        let l = Log::default();
        let lis = listener();
        let addr = lis.local_addr().unwrap();
        let l1 = l.clone();
        let a = spawn(move || {
            l1.push("server accepting");
            let (mut s, _) = lis.accept().unwrap();
            l1.push("server accepted");
            l1.push(format!("server read {}", rd(&s, 10)));
            s.write_all(b"pong").unwrap();
            l1.push("server sent");
        });
        let l2 = l.clone();
        let c = spawn(move || {
            l2.push("client connecting");
            let mut c = TcpStream::connect(addr).unwrap();
            l2.push("client connected");
            c.write_all(b"ping").unwrap();
            l2.push("client sent");
            l2.push(format!("client read {}", rd(&c, 10)));
        });
        a.join().unwrap();
        c.join().unwrap();
        check(
            &l,
            &[
                "server accepting",
                "client connecting",
                "client connected",
                "client sent",
                "server accepted",
                "server read b'ping'",
                "server sent",
                "client read b'pong'",
            ],
        );
    })
}

// ---------------------------------------------------------------- reads

// net_02_two_readers_on_dup.py (gevent 26.9.0) printed
//   ['r1 parks', 'r2 parks', 'r2 got one', 'after one', 'r1 got two', 'done']
// gevent's `dup()` is a second descriptor with a watcher of its own, and
// libev ran the later watcher first. sylvan's `try_clone` shares one
// registration whose readers are served in the order they parked (the
// `sylvan::net` docs: "A readiness event wakes the earliest waiter"), so
// r1 gets the first message: the documented trace is asserted.
#[test]
fn n02_two_readers_on_clones_are_served_in_park_order() {
    bounded(|| {
        let l = Log::default();
        let (mut c, s) = tcp_pair();
        let s2 = s.try_clone().unwrap();
        let reader = |name: &'static str, sock: TcpStream| {
            let l = l.clone();
            spawn(move || {
                l.push(format!("{name} parks"));
                l.push(format!("{name} got {}", rd(&sock, 10)));
            })
        };
        let r1 = reader("r1", s);
        let r2 = reader("r2", s2);
        yield_now();
        c.write_all(b"one").unwrap();
        sleep(50 * MS);
        l.push("after one");
        c.write_all(b"two").unwrap();
        sylvan::joinall(&[r1, r2], Some(Duration::from_secs(1)));
        l.push("done");
        check(
            &l,
            &[
                "r1 parks",
                "r2 parks",
                "r1 got b'one'",
                "after one",
                "r2 got b'two'",
                "done",
            ],
        );
    })
}

// net_03_read_timeout_then_data.py (gevent 26.9.0):
//   ['timeout: timed out', 'got abc', 'timeout again', 'got def']
#[test]
fn n03_read_timeout_then_the_data_is_all_there() {
    bounded(|| {
        let l = Log::default();
        let (mut c, s) = tcp_pair();
        s.set_read_timeout(Some(50 * MS)).unwrap();
        l.push(format!("timeout: {}", rd(&s, 10)));
        c.write_all(b"abc").unwrap();
        l.push(format!("got {}", rd(&s, 10)));
        l.push(format!("timeout again: {}", rd(&s, 10)));
        c.write_all(b"de").unwrap();
        c.write_all(b"f").unwrap();
        sleep(20 * MS);
        l.push(format!("got {}", rd(&s, 10)));
        check(
            &l,
            &[
                "timeout: TimedOut",
                "got b'abc'",
                "timeout again: TimedOut",
                "got b'def'",
            ],
        );
    })
}

// net_13_timeout_change_while_parked.py (gevent 26.9.0):
//   ['timeout set', 'reader got late', 'next recv timed out']
// A timeout set while a reader is parked does not reach that wait (gevent
// reads it when the call starts; sylvan's `do_io` "the direction's timeout
// applies from the first WouldBlock").
#[test]
fn n13_timeout_set_while_a_reader_is_parked_applies_to_the_next_read() {
    bounded(|| {
        let l = Log::default();
        let (mut c, s) = tcp_pair();
        let s = Rc::new(s);
        let (s2, l2) = (s.clone(), l.clone());
        let g = spawn(move || l2.push(format!("reader got {}", rd(&s2, 10))));
        yield_now();
        s.set_read_timeout(Some(20 * MS)).unwrap();
        l.push("timeout set");
        sleep(100 * MS);
        c.write_all(b"late").unwrap();
        g.join().unwrap();
        l.push(format!("next recv {}", rd(&s, 10)));
        check(
            &l,
            &["timeout set", "reader got b'late'", "next recv TimedOut"],
        );
    })
}

// net_12_with_timeout_recv.py (gevent 26.9.0):
//   ['first elapsed', 'then xyz', 'socket timeout fired first',
//    'outer fired first']
#[test]
fn n12_with_timeout_around_a_read_and_which_timeout_fires_first() {
    bounded(|| {
        let l = Log::default();
        let (mut c, s) = tcp_pair();
        let first = with_timeout(30 * MS, || rd(&s, 10));
        l.push(format!(
            "first {}",
            first.unwrap_or_else(|_| "elapsed".into())
        ));
        c.write_all(b"xyz").unwrap();
        l.push(format!("then {}", rd(&s, 10)));
        let which = |r: Result<String, sylvan::Elapsed>| match r {
            Ok(k) if k == "TimedOut" => "socket timeout fired first".to_owned(),
            Ok(other) => format!("read {other}?!"),
            Err(_) => "outer fired first".to_owned(),
        };
        s.set_read_timeout(Some(20 * MS)).unwrap();
        l.push(which(with_timeout(500 * MS, || rd(&s, 10))));
        s.set_read_timeout(Some(500 * MS)).unwrap();
        l.push(which(with_timeout(20 * MS, || rd(&s, 10))));
        check(
            &l,
            &[
                "first elapsed",
                "then b'xyz'",
                "socket timeout fired first",
                "outer fired first",
            ],
        );
    })
}

// net_11_reader_killed_socket_usable.py (gevent 26.9.0):
//   ['reader unwinds', 'killed dead=True', 'main got data',
//    'reader2 got more']
#[test]
fn n11_reader_killed_then_main_and_a_new_reader_get_the_data() {
    bounded(|| {
        let l = Log::default();
        let (mut c, s) = tcp_pair();
        let s = Rc::new(s);
        let (s2, l2) = (s.clone(), l.clone());
        let g = spawn(move || {
            let _f = Fin(l2, "reader unwinds".into());
            rd(&s2, 10)
        });
        yield_now();
        g.kill();
        l.push(format!("killed dead={}", py(g.is_dead())));
        c.write_all(b"data").unwrap();
        l.push(format!("main got {}", rd(&s, 10)));
        let (s3, l3) = (s.clone(), l.clone());
        let g2 = spawn(move || l3.push(format!("reader2 got {}", rd(&s3, 10))));
        yield_now();
        c.write_all(b"more").unwrap();
        g2.join().unwrap();
        check(
            &l,
            &[
                "reader unwinds",
                "killed dead=True",
                "main got b'data'",
                "reader2 got b'more'",
            ],
        );
    })
}

// net_14_recv_zero_len.py (gevent 26.9.0) printed
//   ["recv0 b''", 'writer runs', "then b'q'", "eof recv0 b''", "eof recv b''"]
// CPython's `recv(0)` returns b'' without a syscall. sylvan documents that
// a TCP read into an empty buffer waits for data (or end of stream, or the
// timeout) and returns Ok(0), as `std` on Linux does (`sylvan::net` docs,
// "Timeouts"; pinned against std by probes45::d02): so the writer runs
// first here, and the byte is left for the next read.
#[test]
fn n14_empty_read_waits_for_data_and_leaves_it_as_std_does() {
    bounded(|| {
        let l = Log::default();
        let (c, s) = tcp_pair();
        let l2 = l.clone();
        let c = Rc::new(c);
        let c2 = c.clone();
        spawn(move || {
            l2.push("writer runs");
            (&*c2).write_all(b"q").unwrap();
        });
        l.push(format!("recv0 {}", rd(&s, 0)));
        l.push(format!("then {}", rd(&s, 10)));
        drop(c);
        l.push(format!("eof recv0 {}", rd(&s, 0)));
        l.push(format!("eof recv {}", rd(&s, 10)));
        check(
            &l,
            &[
                "writer runs",
                "recv0 b''",
                "then b'q'",
                "eof recv0 b''",
                "eof recv b''",
            ],
        );
    })
}

// net_15_recv_zero_len_timeout.py (gevent 26.9.0): ["recv0 b''"], at once.
// sylvan: the same b'' but after the read timeout (documented, see n14).
#[test]
fn n15_empty_read_with_a_timeout_returns_zero_when_it_expires() {
    bounded(|| {
        let l = Log::default();
        let (_c, s) = tcp_pair();
        s.set_read_timeout(Some(30 * MS)).unwrap();
        let t = Instant::now();
        l.push(format!("recv0 {}", rd(&s, 0)));
        let took = t.elapsed();
        check(&l, &["recv0 b''"]);
        assert!(took >= 25 * MS && took < Duration::from_secs(2), "{took:?}");
    })
}

// net_28_peek_then_recv.py (gevent 26.9.0):
//   ['writer', 'peek peek', 'peek peekaboo', 'recv peekaboo']
#[test]
fn n28_peek_parks_then_leaves_the_bytes() {
    bounded(|| {
        let l = Log::default();
        let (c, s) = tcp_pair();
        let l2 = l.clone();
        spawn(move || {
            l2.push("writer");
            (&c).write_all(b"peekaboo").unwrap();
        });
        let mut buf = [0u8; 100];
        let n = s.peek(&mut buf[..4]).unwrap();
        l.push(format!("peek {}", String::from_utf8_lossy(&buf[..n])));
        let n = s.peek(&mut buf).unwrap();
        l.push(format!("peek {}", String::from_utf8_lossy(&buf[..n])));
        let n = (&s).read(&mut buf).unwrap();
        l.push(format!("recv {}", String::from_utf8_lossy(&buf[..n])));
        check(
            &l,
            &["writer", "peek peek", "peek peekaboo", "recv peekaboo"],
        );
    })
}

// net_29_two_sockets_event_order.py (gevent 26.9.0):
//   ['main sent', 'B got 2', 'A got 1', 'main back']
// sylvan: ['main sent', "A got b'1'", "B got b'2'", 'main back'].
// Within one poll sylvan wakes readers in the order epoll reports their
// sockets; libev (gevent's default loop) invokes the pending watchers of
// one poll last-first (`ev_invoke_pending` pops `pendings[pri]` from the
// end), so gevent runs them in the reverse of epoll's order. Here epoll's
// order is s1, s2 in both: sylvan registers every socket for both
// directions when it is made, so s1 and s2 sat on epoll's ready list
// (writable) since tcp_pair; libev adds a watcher's descriptor to epoll
// only at its next loop iteration, after the writes, and epoll_ctl queues
// descriptors already readable in the order they are added. So gevent ran
// B first. n29b shows the reverse case. Neither gevent nor sylvan
// promises an order across sockets readied in one poll, so the test checks
// that both readers get their bytes, in either order.
#[test]
fn n29_two_readers_woken_in_one_poll_both_run() {
    bounded(|| {
        let l = Log::default();
        let (c1, s1) = tcp_pair();
        let (c2, s2) = tcp_pair();
        let r = |name: &'static str, s: TcpStream| {
            let l = l.clone();
            spawn(move || l.push(format!("{name} got {}", rd(&s, 10))))
        };
        let a = r("A", s1);
        let b = r("B", s2);
        yield_now();
        (&c2).write_all(b"2").unwrap();
        (&c1).write_all(b"1").unwrap();
        l.push("main sent");
        assert!(joinall(&[a, b], None));
        l.push("main back");
        let mut got = l.get();
        got[1..3].sort();
        assert_eq!(got, ["main sent", "A got b'1'", "B got b'2'", "main back"]);
    })
}

// net_29b_two_sockets_event_order_after_a_poll.py (gevent 26.9.0), net_29
// with one poll (a 1 ms sleep) between the readers parking and the writes:
//   ['main sent', 'A got 1', 'B got 2', 'main back']
// sylvan: B first. Now epoll reports s2 (written first), then s1: sylvan
// follows that order, libev runs the two pending watchers last-first
// (see n29). Which reader runs first is gevent's loop's artifact, not a
// promise of gevent's; the cause is the same as n29's, and the test
// checks the same as n29's.
#[test]
fn n29b_after_a_poll_two_readers_woken_in_one_poll_both_run() {
    bounded(|| {
        let l = Log::default();
        let (c1, s1) = tcp_pair();
        let (c2, s2) = tcp_pair();
        let r = |name: &'static str, s: TcpStream| {
            let l = l.clone();
            spawn(move || l.push(format!("{name} got {}", rd(&s, 10))))
        };
        let a = r("A", s1);
        let b = r("B", s2);
        sleep(MS);
        (&c2).write_all(b"2").unwrap();
        (&c1).write_all(b"1").unwrap();
        l.push("main sent");
        assert!(joinall(&[a, b], None));
        l.push("main back");
        let mut got = l.get();
        got[1..3].sort();
        assert_eq!(got, ["main sent", "A got b'1'", "B got b'2'", "main back"]);
    })
}

// ---------------------------------------------------------------- close,
// shutdown, reset

// net_05_close_under_parked_reader.py (gevent 26.9.0) printed
//   ['closed', 'reader error errno=9', "peer recv b''"]
// gevent's `close()` closes the descriptor under the parked reader, which
// gets EBADF (`cancel_wait_ex`). sylvan has no close of a shared socket:
// dropping one `try_clone` handle closes nothing ("dropping one does not
// wake a greenlet reading another; `shutdown` does", README Networking;
// `sylvan::net` docs "Dropping closes" and "Shutdown wakes"). So the
// translation is `shutdown(Both)` and a drop: the reader wakes with end of
// stream and the peer sees its FIN. That a bare drop does not wake the
// reader (nor reach the peer) is checked first.
#[test]
fn n05_shutdown_is_the_close_that_wakes_a_parked_reader() {
    bounded(|| {
        let l = Log::default();
        let (c, s) = tcp_pair();
        let s2 = s.try_clone().unwrap();
        let l2 = l.clone();
        let g = spawn(move || l2.push(format!("reader got {}", rd(&s2, 10))));
        yield_now();
        let other = s.try_clone().unwrap();
        drop(other);
        sleep(20 * MS);
        assert!(!g.is_dead(), "a dropped clone woke the reader");
        assert!(c.is_reusable(), "a dropped clone reached the peer");
        s.shutdown(Shutdown::Both).unwrap();
        drop(s);
        l.push("closed");
        g.join().unwrap();
        l.push(format!("peer recv {}", rd(&c, 10)));
        check(&l, &["closed", "reader got b''", "peer recv b''"]);
    })
}

// net_06_shutdown_wr_half_close.py (gevent 26.9.0):
//   ['client shut wr', "server read b'hell'", "server read b'o'",
//    "server read b''", 'server replied', "client read b'HELLO'",
//    "client read b''", "client again b''"]
#[test]
fn n06_half_close_then_the_reply_flows_back() {
    bounded(|| {
        let l = Log::default();
        let lis = listener();
        let addr = lis.local_addr().unwrap();
        let l2 = l.clone();
        let g = spawn(move || {
            let (mut s, _) = lis.accept().unwrap();
            let mut all = Vec::new();
            loop {
                let mut buf = [0u8; 4];
                let n = s.read(&mut buf).unwrap();
                l2.push(format!("server read {}", b(&buf[..n])));
                if n == 0 {
                    break;
                }
                all.extend_from_slice(&buf[..n]);
            }
            s.write_all(&all.to_ascii_uppercase()).unwrap();
            l2.push("server replied");
        });
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"hello").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        l.push("client shut wr");
        loop {
            let got = rd(&c, 100);
            let eof = got == "b''";
            l.push(format!("client read {got}"));
            if eof {
                break;
            }
        }
        l.push(format!("client again {}", rd(&c, 100)));
        g.join().unwrap();
        check(
            &l,
            &[
                "client shut wr",
                "server read b'hell'",
                "server read b'o'",
                "server read b''",
                "server replied",
                "client read b'HELLO'",
                "client read b''",
                "client again b''",
            ],
        );
    })
}

// net_07_reset_with_pending_data.py (gevent 26.9.0):
//   ["read b'abc'", 'read error ConnectionResetError', "read b''",
//    'send error BrokenPipeError', 'send error BrokenPipeError']
#[test]
fn n07_reset_after_data_reads_the_data_then_reset_then_eof() {
    bounded(|| {
        let l = Log::default();
        let (mut c, s) = tcp_pair();
        c.write_all(b"abc").unwrap();
        sleep(20 * MS);
        set_linger_zero(c.as_raw_fd());
        drop(c);
        sleep(20 * MS);
        for _ in 0..3 {
            l.push(format!("read {}", rd(&s, 10)));
        }
        for _ in 0..2 {
            match (&s).write_all(b"x") {
                Ok(()) => l.push("send ok"),
                Err(e) => l.push(format!("send error {}", kind(&e))),
            }
        }
        check(
            &l,
            &[
                "read b'abc'",
                "read ConnectionReset",
                "read b''",
                "send error BrokenPipe",
                "send error BrokenPipe",
            ],
        );
    })
}

// net_08_reset_wakes_parked_reader.py (gevent 26.9.0):
//   ['resetting', 'read error ConnectionResetError', "read b''", "read b''"]
#[test]
fn n08_reset_wakes_a_parked_reader_with_reset_then_eof() {
    bounded(|| {
        let l = Log::default();
        let (c, s) = tcp_pair();
        let l2 = l.clone();
        let g = spawn(move || {
            for _ in 0..3 {
                l2.push(format!("read {}", rd(&s, 10)));
            }
        });
        yield_now();
        l.push("resetting");
        set_linger_zero(c.as_raw_fd());
        drop(c);
        g.join().unwrap();
        check(
            &l,
            &["resetting", "read ConnectionReset", "read b''", "read b''"],
        );
    })
}

// net_32_write_after_peer_close.py (gevent 26.9.0):
//   ['send ok 1', "recv ok b''", "recv ok b''", 'send BrokenPipeError']
#[test]
fn n32_writes_after_the_peer_closed_one_goes_through_then_broken_pipe() {
    bounded(|| {
        let l = Log::default();
        let (c, s) = tcp_pair();
        drop(c);
        sleep(20 * MS);
        match (&s).write(b"a") {
            Ok(n) => l.push(format!("send ok {n}")),
            Err(e) => l.push(format!("send {}", kind(&e))),
        }
        sleep(20 * MS);
        l.push(format!("recv ok {}", rd(&s, 10)));
        l.push(format!("recv ok {}", rd(&s, 10)));
        match (&s).write(b"b") {
            Ok(n) => l.push(format!("send ok {n}")),
            Err(e) => l.push(format!("send {}", kind(&e))),
        }
        check(
            &l,
            &["send ok 1", "recv ok b''", "recv ok b''", "send BrokenPipe"],
        );
    })
}

// ---------------------------------------------------------------- writes

// net_04_send_timeout_full_buffer.py (gevent 26.9.0):
//   ['send timed out', 'sent>0 True', 'peer got all sent True', 'after: end']
#[test]
fn n04_write_timeout_on_a_full_buffer_loses_and_adds_nothing() {
    bounded(|| {
        let l = Log::default();
        let (c, s) = tcp_pair();
        c.set_write_timeout(Some(100 * MS)).unwrap();
        let chunk = vec![b'x'; 65536];
        let mut total = 0;
        loop {
            match (&c).write(&chunk) {
                Ok(n) => total += n,
                Err(e) => {
                    l.push(format!("send {}", kind(&e)));
                    break;
                }
            }
        }
        l.push(format!("sent>0 {}", py(total > 0)));
        s.set_read_timeout(Some(200 * MS)).unwrap();
        let mut got = 0;
        let mut buf = vec![0u8; 1 << 20];
        while let Ok(n) = (&s).read(&mut buf) {
            got += n;
        }
        l.push(format!("peer got all sent {}", py(got == total)));
        c.set_write_timeout(None).unwrap();
        (&c).write_all(b"end").unwrap();
        l.push(format!("after: {}", rd(&s, 10)));
        check(
            &l,
            &[
                "send TimedOut",
                "sent>0 True",
                "peer got all sent True",
                "after: b'end'",
            ],
        );
    })
}

// net_16_full_duplex_reader_writer.py (gevent 26.9.0):
//   ['echo done', 'reader done 4194304', 'writer done'] (sorted)
#[test]
fn n16_reader_and_writer_greenlets_on_one_socket_full_duplex() {
    bounded(|| {
        let l = Log::default();
        let (c, s) = tcp_pair();
        const N: usize = 4 << 20;
        let c2 = c.try_clone().unwrap();
        let l1 = l.clone();
        let echo = spawn(move || {
            let mut n = 0;
            let mut buf = vec![0u8; 65536];
            while n < N {
                let k = (&s).read(&mut buf).unwrap();
                (&s).write_all(&buf[..k]).unwrap();
                n += k;
            }
            l1.push("echo done");
        });
        let l2 = l.clone();
        let writer = spawn(move || {
            (&c2).write_all(&vec![b'z'; N]).unwrap();
            l2.push("writer done");
        });
        let l3 = l.clone();
        let reader = spawn(move || {
            let mut n = 0;
            let mut buf = vec![0u8; 65536];
            while n < N {
                n += (&c).read(&mut buf).unwrap();
            }
            l3.push(format!("reader done {n}"));
        });
        reader.join().unwrap();
        writer.join().unwrap();
        echo.join().unwrap();
        let mut got = l.get();
        got.sort();
        assert_eq!(got, ["echo done", "reader done 4194304", "writer done"]);
    })
}

// net_30_sendall_slow_reader_ticker.py (gevent 26.9.0):
//   ['sendall returned ticks>10 True', 'reader intact True']
#[test]
fn n30_write_all_to_a_slow_reader_lets_others_run_and_keeps_order() {
    bounded(|| {
        let l = Log::default();
        let (c, s) = tcp_pair();
        const N: usize = 8 << 20;
        let data: Rc<Vec<u8>> = Rc::new((0..N).map(|i| i as u8).collect());
        let ticks = Rc::new(Cell::new(0u32));
        let t2 = ticks.clone();
        let ticker = spawn(move || {
            loop {
                sleep(MS);
                t2.set(t2.get() + 1);
            }
        });
        let (l2, d2) = (l.clone(), data.clone());
        let reader = spawn(move || {
            let mut got = Vec::with_capacity(N);
            let mut buf = vec![0u8; 65536];
            while got.len() < N {
                let n = (&s).read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
                sleep(MS);
            }
            l2.push(format!("reader intact {}", py(got == *d2)));
        });
        (&c).write_all(&data).unwrap();
        l.push(format!(
            "sendall returned ticks>10 {}",
            py(ticks.get() > 10)
        ));
        reader.join().unwrap();
        ticker.kill();
        check(
            &l,
            &["sendall returned ticks>10 True", "reader intact True"],
        );
    })
}

// ---------------------------------------------------------------- connect

// net_09_connect_refused_and_timeout.py (gevent 26.9.0):
//   ['refused ConnectionRefusedError ECONNREFUSED',
//    'refused ConnectionRefusedError ECONNREFUSED', 'timed out: timed out',
//    'some connected True']
#[test]
fn n09_connect_refused_with_and_without_timeout_and_full_backlog_times_out() {
    bounded(|| {
        let l = Log::default();
        let addr = dead_port();
        let e = first_error(|| TcpStream::connect(addr));
        l.push(format!("refused {} {:?}", kind(&e), e.raw_os_error()));
        let e = first_error(|| TcpStream::connect_timeout(addr, 500 * MS));
        l.push(format!("refused {} {:?}", kind(&e), e.raw_os_error()));
        let lis = TcpListener::bind("127.0.0.1:0").unwrap();
        backlog_zero(&lis);
        let mut held = Vec::new();
        for _ in 0..8 {
            match TcpStream::connect_timeout(lis.local_addr().unwrap(), 100 * MS) {
                Ok(c) => held.push(c),
                Err(e) => {
                    l.push(format!("timed out: {}", kind(&e)));
                    break;
                }
            }
        }
        l.push(format!("some connected {}", py(!held.is_empty())));
        let refused = format!("refused ConnectionRefused {:?}", Some(libc::ECONNREFUSED));
        check(
            &l,
            &[
                &refused,
                &refused,
                "timed out: TimedOut",
                "some connected True",
            ],
        );
    })
}

// net_33_connect_killed_then_retry.py (gevent 26.9.0):
//   ['backlog full', 'connect killed', 'dead True', 'with_timeout elapsed',
//    'new listener connect ok']
#[test]
fn n33_connect_killed_or_timed_out_while_parked_then_a_new_connect_works() {
    bounded(|| {
        let l = Log::default();
        let lis = TcpListener::bind("127.0.0.1:0").unwrap();
        backlog_zero(&lis);
        let addr = lis.local_addr().unwrap();
        let mut held = Vec::new();
        while let Ok(c) = TcpStream::connect_timeout(addr, 50 * MS) {
            held.push(c);
            assert!(held.len() < 8, "the backlog never filled");
        }
        l.push("backlog full");
        let l2 = l.clone();
        let g = spawn(move || {
            let _k = OnKill(l2.clone(), "connect killed".into());
            let _ = TcpStream::connect(addr);
            l2.push("connected?!");
        });
        sleep(20 * MS);
        g.kill();
        l.push(format!("dead {}", py(g.is_dead())));
        let r = with_timeout(50 * MS, || TcpStream::connect(addr));
        l.push(if r.is_err() {
            "with_timeout elapsed".to_owned()
        } else {
            format!("with_timeout {r:?}")
        });
        drop(lis);
        let lis2 = TcpListener::bind("127.0.0.1:0").unwrap();
        let _c = TcpStream::connect(lis2.local_addr().unwrap()).unwrap();
        l.push("new listener connect ok");
        check(
            &l,
            &[
                "backlog full",
                "connect killed",
                "dead True",
                "with_timeout elapsed",
                "new listener connect ok",
            ],
        );
    })
}

// ---------------------------------------------------------------- servers

/// A handler's guard: logs `"{kind} killed"` if the handler unwinds.
fn handler_log(l: &Log, kind: &str) -> OnKill {
    OnKill(l.clone(), format!("{kind} killed"))
}

// net_17_server_handler_order.py (gevent 26.9.0):
//   ['h start 0', 'h start 1', 'clients connected', 'h start 2', 'h end',
//    'h end', 'h end', 'stopped']
// sylvan logs "clients connected" first: its loopback connect does not
// switch. gevent's `connect` waits for the write event whenever
// `connect_ex` says EINPROGRESS (`_socketcommon._internal_connect`), so
// each connect runs the hub once and the accept loop and handlers run
// meanwhile; sylvan's `connect_one` (hub/src/net/tcp.rs) checks the socket
// at once (`do_io_until(Dir::Write, "connect", .., finish_connect)`), and a
// loopback handshake is done by then, so no other greenlet runs until main
// sleeps. Now among the README's "Where the order of events differs"; the
// test pins sylvan's order.
#[test]
fn n17_server_handlers_start_in_connection_order() {
    bounded(|| {
        let l = Log::default();
        let l2 = l.clone();
        let srv = StreamServer::bind("127.0.0.1:0", move |s: TcpStream, _| {
            l2.push(format!("h start {}", rd(&s, 1).trim_matches(['b', '\''])));
            sleep(10 * MS);
            l2.push("h end");
        })
        .unwrap()
        .start()
        .unwrap();
        let addr = srv.local_addr().unwrap();
        let mut cs = Vec::new();
        for i in 0..3 {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(i.to_string().as_bytes()).unwrap();
            cs.push(c);
        }
        l.push("clients connected");
        sleep(200 * MS);
        srv.stop(None);
        l.push("stopped");
        check(
            &l,
            &[
                "clients connected",
                "h start 0",
                "h start 1",
                "h start 2",
                "h end",
                "h end",
                "h end",
                "stopped",
            ],
        );
    })
}

/// The handler of net_18/net_19: reads its kind, sleeps (50 ms for
/// "fast", `slow` for "slow"), answers "bye".
fn fast_slow(l: &Log, slow: Duration) -> impl Fn(TcpStream, SocketAddr) + 'static {
    let l = l.clone();
    move |mut s: TcpStream, _| {
        let mut k = [0u8; 4];
        s.read_exact(&mut k).unwrap();
        let kind = String::from_utf8_lossy(&k).into_owned();
        let _g = handler_log(&l, &kind);
        sleep(if kind == "fast" { 50 * MS } else { slow });
        s.write_all(b"bye").unwrap();
        l.push(format!("{kind} done"));
    }
}

/// Connects a "fast" and a "slow" client to `srv`, stops it with a 300 ms
/// grace, and logs what each client then reads and what a new connect
/// gets.
fn stop_with_two_clients(l: &Log, srv: StreamServer) {
    let addr = srv.local_addr().unwrap();
    let mut a = TcpStream::connect(addr).unwrap();
    a.write_all(b"fast").unwrap();
    let mut b = TcpStream::connect(addr).unwrap();
    b.write_all(b"slow").unwrap();
    sleep(10 * MS);
    srv.stop(Some(300 * MS));
    l.push("stop returned");
    l.push(format!("fast client {}", rd(&a, 10)));
    l.push(format!("slow client {}", rd(&b, 10)));
    let e = first_error(|| TcpStream::connect(addr));
    l.push(format!("new {}", kind(&e)));
}

// net_18_pooled_server_stop_timeout_kills.py (gevent 26.9.0), a server
// with a pool (`spawn=10`):
//   ['fast done', 'slow killed', 'stop returned', "fast client b'bye'",
//    "slow client b''", 'new ConnectionRefusedError']
#[test]
fn n18_pooled_server_stop_waits_the_grace_then_kills() {
    bounded(|| {
        let l = Log::default();
        let srv = StreamServer::bind("127.0.0.1:0", fast_slow(&l, Duration::from_secs(10)))
            .unwrap()
            .with_pool(Pool::new(10))
            .start()
            .unwrap();
        stop_with_two_clients(&l, srv);
        check(
            &l,
            &[
                "fast done",
                "slow killed",
                "stop returned",
                "fast client b'bye'",
                "slow client b''",
                "new ConnectionRefused",
            ],
        );
    })
}

// net_19_unpooled_server_stop_does_not_wait.py (gevent 26.9.0), a server
// without a pool (the default), slow handler sleeping 500 ms:
//   ['stop returned', 'fast done', "fast client b'bye'", 'slow done',
//    "slow client b'bye'", 'new ConnectionRefusedError']
// gevent's `stop` waits for and kills handlers only when the server has a
// pool ("If the server does not use a pool, then this merely stops
// accepting connections; any spawned greenlets ... continue running until
// they naturally complete", baseserver.py). sylvan's `stop` always waits
// up to the timeout and kills (n18's trace for both kinds of server), and
// its docs did not say that an unpooled gevent server differs. They do
// now (`StreamServer::stop`, and the README's "Where the order of events
// differs"); the test pins sylvan's behaviour.
#[test]
fn n19_unpooled_server_stop_waits_the_grace_then_kills_too() {
    bounded(|| {
        let l = Log::default();
        let srv = StreamServer::bind("127.0.0.1:0", fast_slow(&l, 500 * MS))
            .unwrap()
            .start()
            .unwrap();
        stop_with_two_clients(&l, srv);
        check(
            &l,
            &[
                "fast done",
                "slow killed",
                "stop returned",
                "fast client b'bye'",
                "slow client b''",
                "new ConnectionRefused",
            ],
        );
    })
}

// net_20_server_close_vs_stop.py (gevent 26.9.0):
//   ['closed', 'new ConnectionRefusedError', 'handler done',
//    "client got b'late'", 'after']
// gevent's `close()` is sylvan's drop of the last handle ("Dropping the
// last handle of a started server stops accepting without waiting;
// running handlers finish on their own", `StreamServer` docs). The connect
// right after it is tried once.
// sylvan: "new connected". Dropping the last handle only `kill_nowait`s
// the accept loop, which owns the listener (`Inner::drop`,
// hub/src/net/server.rs), so the listener is still open until that
// greenlet next runs: a connect made before main parks lands in its
// backlog and is reset when the loop unwinds, where gevent's `close()`
// closes the listening socket at once and the connect is refused. Fixed:
// the drop now shuts the listening socket down at once.
#[test]
fn n20_dropping_the_server_stops_accepting_and_leaves_handlers_running() {
    bounded(|| {
        let l = Log::default();
        let l2 = l.clone();
        let srv = StreamServer::bind("127.0.0.1:0", move |mut s: TcpStream, _| {
            let mut k = [0u8; 1];
            s.read_exact(&mut k).unwrap();
            sleep(50 * MS);
            s.write_all(b"late").unwrap();
            l2.push("handler done");
        })
        .unwrap()
        .start()
        .unwrap();
        let addr = srv.local_addr().unwrap();
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"x").unwrap();
        sleep(10 * MS);
        drop(srv);
        l.push("closed");
        match TcpStream::connect(addr) {
            Ok(_) => l.push("new connected"),
            Err(e) => l.push(format!("new {}", kind(&e))),
        }
        l.push(format!("client got {}", rd(&c, 10)));
        sleep(10 * MS);
        l.push("after");
        check(
            &l,
            &[
                "closed",
                "new ConnectionRefused",
                "handler done",
                "client got b'late'",
                "after",
            ],
        );
    })
}

// net_21_serve_forever_returns.py (gevent 26.9.0):
//   ['handler stops server', 'handler after stop', 'serve_forever returned',
//    'joined']
#[test]
fn n21_serve_forever_returns_after_a_handler_stops_the_server() {
    bounded(|| {
        let l = Log::default();
        let cell: Rc<RefCell<Option<StreamServer>>> = Rc::default();
        let (l2, cell2) = (l.clone(), cell.clone());
        let srv = StreamServer::bind("127.0.0.1:0", move |_s: TcpStream, _| {
            l2.push("handler stops server");
            let me = cell2.borrow().clone().unwrap();
            me.stop(None);
            l2.push("handler after stop");
        })
        .unwrap();
        *cell.borrow_mut() = Some(srv.clone());
        let addr = srv.local_addr().unwrap();
        let l3 = l.clone();
        let g = spawn(move || {
            srv.serve_forever().unwrap();
            l3.push("serve_forever returned");
        });
        sleep(10 * MS);
        let _c = TcpStream::connect(addr).unwrap();
        g.join().unwrap();
        l.push("joined");
        cell.borrow_mut().take();
        check(
            &l,
            &[
                "handler stops server",
                "handler after stop",
                "serve_forever returned",
                "joined",
            ],
        );
    })
}

// net_22_handler_return_closes.py (gevent 26.9.0):
//   ["client a got b'oka' then eof", "client e got b'oke' then eof",
//    "client b got b'okb' then eof"]
// The Python handler raises for "e"; here it panics (the hub's error
// policy reports it; quieted).
#[test]
fn n22_handler_return_or_panic_closes_the_connection_and_the_server_goes_on() {
    bounded(|| {
        quiet();
        let l = Log::default();
        let srv = StreamServer::bind("127.0.0.1:0", |mut s: TcpStream, _| {
            let mut k = [0u8; 1];
            s.read_exact(&mut k).unwrap();
            s.write_all(&[b'o', b'k', k[0]]).unwrap();
            if &k == b"e" {
                panic!("boom");
            }
        })
        .unwrap()
        .start()
        .unwrap();
        for k in [b"a", b"e", b"b"] {
            let mut c = TcpStream::connect(srv.local_addr().unwrap()).unwrap();
            c.write_all(k).unwrap();
            let mut got = Vec::new();
            c.read_to_end(&mut got).unwrap();
            l.push(format!(
                "client {} got {} then eof",
                String::from_utf8_lossy(k),
                b(&got)
            ));
        }
        srv.stop(None);
        check(
            &l,
            &[
                "client a got b'oka' then eof",
                "client e got b'oke' then eof",
                "client b got b'okb' then eof",
            ],
        );
    })
}

// net_23_server_pool_full.py (gevent 26.9.0), `spawn=Pool(1)`:
//   ['h1 start', 'c2 connected', 'h1 end', 'h2 start', 'h2 end']
#[test]
fn n23_pool_of_one_starts_the_second_handler_when_the_first_ends() {
    bounded(|| {
        let l = Log::default();
        let l2 = l.clone();
        let srv = StreamServer::bind("127.0.0.1:0", move |s: TcpStream, _| {
            let k = rd(&s, 1);
            let k = k.trim_matches(['b', '\'']);
            l2.push(format!("h{k} start"));
            sleep(50 * MS);
            l2.push(format!("h{k} end"));
        })
        .unwrap()
        .with_pool(Pool::new(1))
        .start()
        .unwrap();
        let addr = srv.local_addr().unwrap();
        let mut c1 = TcpStream::connect(addr).unwrap();
        c1.write_all(b"1").unwrap();
        sleep(10 * MS);
        let mut c2 = TcpStream::connect(addr).unwrap();
        c2.write_all(b"2").unwrap();
        l.push("c2 connected");
        sleep(200 * MS);
        srv.stop(None);
        check(
            &l,
            &["h1 start", "c2 connected", "h1 end", "h2 start", "h2 end"],
        );
    })
}

// ---------------------------------------------------------------- UDP

// net_24_udp_timeout_self_refused.py (gevent 26.9.0):
//   ['recvfrom timed out', 'got me from self True', 'recv ECONNREFUSED',
//    'recv timed out']
#[test]
fn n24_udp_timeout_send_to_self_and_refused_then_timeout() {
    bounded(|| {
        let l = Log::default();
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        u.set_read_timeout(Some(30 * MS)).unwrap();
        let mut buf = [0u8; 100];
        match u.recv_from(&mut buf) {
            Err(e) => l.push(format!("recvfrom {}", kind(&e))),
            Ok(r) => l.push(format!("recvfrom {r:?}?!")),
        }
        u.send_to(b"me", u.local_addr().unwrap()).unwrap();
        let (n, a) = u.recv_from(&mut buf).unwrap();
        l.push(format!(
            "got {} from self {}",
            String::from_utf8_lossy(&buf[..n]),
            py(a == u.local_addr().unwrap())
        ));
        let dead = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let v = UdpSocket::bind("127.0.0.1:0").unwrap();
        v.connect(dead).unwrap();
        v.set_read_timeout(Some(50 * MS)).unwrap();
        v.send(b"anyone?").unwrap();
        for _ in 0..2 {
            match v.recv(&mut buf) {
                Err(e) => l.push(format!("recv {}", kind(&e))),
                Ok(n) => l.push(format!("recv {n}?!")),
            }
        }
        check(
            &l,
            &[
                "recvfrom TimedOut",
                "got me from self True",
                "recv ConnectionRefused",
                "recv TimedOut",
            ],
        );
    })
}

// net_25_udp_reader_killed_next_gets.py (gevent 26.9.0):
//   ['killed', 'with_timeout None', 'rx got d1']
#[test]
fn n25_udp_receiver_killed_or_timed_out_then_the_next_gets_the_datagram() {
    bounded(|| {
        let l = Log::default();
        let u = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let u2 = u.clone();
        let g = spawn(move || {
            let mut buf = [0u8; 100];
            let _ = u2.recv_from(&mut buf);
        });
        yield_now();
        g.kill();
        l.push("killed");
        let r = with_timeout(20 * MS, || {
            let mut buf = [0u8; 100];
            u.recv_from(&mut buf).map(|(n, _)| n)
        });
        l.push(match r {
            Err(_) => "with_timeout None".to_owned(),
            Ok(x) => format!("with_timeout {x:?}"),
        });
        let (u3, l3) = (u.clone(), l.clone());
        let g2 = spawn(move || {
            let mut buf = [0u8; 100];
            let (n, _) = u3.recv_from(&mut buf).unwrap();
            l3.push(format!("rx got {}", String::from_utf8_lossy(&buf[..n])));
        });
        yield_now();
        s.send_to(b"d1", u.local_addr().unwrap()).unwrap();
        g2.join().unwrap();
        check(&l, &["killed", "with_timeout None", "rx got d1"]);
    })
}

// ---------------------------------------------------------------- Unix

// net_26_unix_connect_errors_half_close.py (gevent 26.9.0):
//   ['missing: FileNotFoundError ENOENT', 'bind in use: OSError EADDRINUSE',
//    "server read b'req'", "server read b''", "client read b'back'",
//    "client read b''", 'stale: ConnectionRefusedError ECONNREFUSED']
#[test]
fn n26_unix_connect_errors_and_half_close() {
    bounded(|| {
        let l = Log::default();
        let dir = std::env::temp_dir().join(format!("sylvan-p59-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let p = dir.join("s");
        let err = |r: io::Result<()>| match r {
            Ok(()) => "ok".to_owned(),
            Err(e) => kind(&e),
        };
        l.push(format!(
            "missing: {}",
            err(UnixStream::connect(&p).map(drop))
        ));
        let lis = UnixListener::bind(&p).unwrap();
        l.push(format!(
            "bind in use: {}",
            err(UnixListener::bind(&p).map(drop))
        ));
        let l2 = l.clone();
        let g = spawn(move || {
            let (mut s, _) = lis.accept().unwrap();
            for _ in 0..2 {
                let mut buf = [0u8; 10];
                let n = s.read(&mut buf).unwrap();
                l2.push(format!("server read {}", b(&buf[..n])));
            }
            s.write_all(b"back").unwrap();
            // Returning drops the listener too, as the script's
            // `lis.close()` after the join.
        });
        let mut c = UnixStream::connect(&p).unwrap();
        c.write_all(b"req").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        for _ in 0..2 {
            let mut buf = [0u8; 10];
            let n = c.read(&mut buf).unwrap();
            l.push(format!("client read {}", b(&buf[..n])));
        }
        g.join().unwrap();
        l.push(format!("stale: {}", err(UnixStream::connect(&p).map(drop))));
        std::fs::remove_dir_all(&dir).unwrap();
        check(
            &l,
            &[
                "missing: NotFound",
                "bind in use: AddrInUse",
                "server read b'req'",
                "server read b''",
                "client read b'back'",
                "client read b''",
                "stale: ConnectionRefused",
            ],
        );
    })
}
