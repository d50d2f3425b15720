//! Probes of `sylvan::net` ported from gevent's test suite (test__server,
//! test__socket, test__socket_close, test__socket_dns, test__socket_timeout,
//! test__makefile_ref, test__socket_errors, test__greenio) and from std's
//! documented socket behaviour. Every test body is bounded by a 5 s
//! `with_timeout`, so a hang fails instead of hanging.

use std::cell::{Cell, RefCell};
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sylvan::net::{
    StreamServer, TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream,
};
use sylvan::pool::Pool;
use sylvan::sync::Event;

use crate::net::{full_backlog_listener, unix_path};
use crate::net_peers::{pair as tcp_pair, set_linger_zero};
use crate::util::{DropFlag, bounded, first_error, is_child, quiet, run_child, yield_until};

fn kind<T: std::fmt::Debug>(r: io::Result<T>) -> io::ErrorKind {
    match r {
        Err(e) => e.kind(),
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

// ---------------------------------------------------------------------------
// StreamServer (gevent test__server.py)
// ---------------------------------------------------------------------------

/// gevent test_subclass_just_create: a server made on a listener but not
/// started leaves connections in the backlog (not refused, not handled);
/// starting it serves them.
#[test]
fn server_not_started_leaves_connections_in_the_backlog_until_start() {
    bounded(|| {
        let ran = Rc::new(Cell::new(0));
        let r = ran.clone();
        let server = StreamServer::bind("127.0.0.1:0", move |_c: TcpStream, _| {
            r.set(r.get() + 1);
        })
        .unwrap();
        let addr = server.local_addr().unwrap();
        let c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
        assert_eq!(kind((&c).read(&mut [0u8; 1])), io::ErrorKind::TimedOut);
        assert_eq!(ran.get(), 0);
        assert!(!server.is_started());
        let server = server.start().unwrap();
        assert!(server.is_started());
        c.set_read_timeout(None).unwrap();
        // the handler ran and dropped the connection: end of stream
        assert_eq!((&c).read(&mut [0u8; 1]).unwrap(), 0);
        assert_eq!(ran.get(), 1);
        server.stop(Some(Duration::from_secs(1)));
    });
}

/// gevent test_serve_forever: serve_forever in a greenlet serves requests,
/// returns after stop, and new connections are then refused.
#[test]
fn serve_forever_in_a_greenlet_returns_after_stop_and_connections_are_refused() {
    bounded(|| {
        let server = StreamServer::bind("127.0.0.1:0", |mut c: TcpStream, _| {
            let _ = c.write_all(b"PONG");
        })
        .unwrap();
        let addr = server.local_addr().unwrap();
        let s2 = server.clone();
        let g = sylvan::spawn(move || s2.serve_forever());
        yield_until("serve_forever started", || server.is_started());
        let mut c = TcpStream::connect(addr).unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"PONG");
        server.stop(None);
        assert!(!server.is_started());
        assert!(server.is_stopped());
        g.join().unwrap().unwrap();
        assert_eq!(
            first_error(|| TcpStream::connect(addr)).kind(),
            io::ErrorKind::ConnectionRefused
        );
        // a stopped server cannot be served again
        assert!(server.serve_forever().is_err());
    });
}

/// gevent's BaseServer.serve_forever ends with
/// `Greenlet.spawn(self.stop, timeout=stop_timeout).join()`: when it
/// returns, the stop (waiting for handlers, then killing them) is done.
#[test]
fn serve_forever_returns_only_after_stop_has_dealt_with_the_handlers() {
    bounded(|| {
        let killed = Rc::new(Cell::new(0));
        let k = killed.clone();
        let server = StreamServer::bind("127.0.0.1:0", move |_c: TcpStream, _| {
            let _flag = DropFlag(k.clone());
            sylvan::sleep(Duration::from_secs(3600)); // a stuck handler
        })
        .unwrap();
        let addr = server.local_addr().unwrap();
        let _client = TcpStream::connect(addr).unwrap();
        let s2 = server.clone();
        let stopper = sylvan::spawn(move || {
            yield_until("the handler runs", || s2.handlers() == 1);
            s2.stop(Some(Duration::from_millis(100)));
        });
        server.serve_forever().unwrap();
        let handlers_at_return = server.handlers();
        let killed_at_return = killed.get();
        stopper.join().unwrap();
        assert_eq!(
            (handlers_at_return, killed_at_return),
            (0, 1),
            "serve_forever returned while stop was still waiting for the handler"
        );
    });
}

/// stop with a zero timeout kills running handlers at once; their sockets
/// close.
#[test]
fn stop_with_zero_timeout_kills_handlers_at_once() {
    bounded(|| {
        let killed = Rc::new(Cell::new(0));
        let k = killed.clone();
        let server = StreamServer::bind("127.0.0.1:0", move |c: TcpStream, _| {
            let _flag = DropFlag(k.clone());
            let _ = (&c).read(&mut [0u8; 1]); // parks: the client never writes
        })
        .unwrap()
        .start()
        .unwrap();
        let c = TcpStream::connect(server.local_addr().unwrap()).unwrap();
        yield_until("the handler runs", || server.handlers() == 1);
        let t = Instant::now();
        server.stop(Some(Duration::ZERO));
        assert!(t.elapsed() < Duration::from_secs(1));
        assert_eq!(killed.get(), 1);
        assert_eq!(server.handlers(), 0);
        assert_eq!(
            (&c).read(&mut [0u8; 1]).unwrap(),
            0,
            "handler's socket closed"
        );
    });
}

/// gevent's stop() always joins and kills the handlers, however often it is
/// called; a stop cut short by a timeout must not leave the handlers
/// unreachable: a second stop finishes the job.
#[test]
fn a_stop_cut_short_by_a_timeout_can_be_finished_by_a_second_stop() {
    bounded(|| {
        let server = StreamServer::bind("127.0.0.1:0", |_c: TcpStream, _| {
            sylvan::sleep(Duration::from_secs(3600));
        })
        .unwrap()
        .start()
        .unwrap();
        let _c = TcpStream::connect(server.local_addr().unwrap()).unwrap();
        yield_until("the handler runs", || server.handlers() == 1);
        let r = sylvan::with_timeout(Duration::from_millis(30), || server.stop(None));
        assert!(r.is_err(), "stop(None) waits for the stuck handler");
        server.stop(Some(Duration::ZERO));
        assert_eq!(server.handlers(), 0, "the second stop killed the handler");
    });
}

/// A handler that panics in a pooled server frees its pool slot: the next
/// connection is served (gevent: handler errors are reported, the server
/// goes on).
#[test]
fn pooled_server_handler_panic_frees_its_slot() {
    bounded(|| {
        quiet();
        let pool = Pool::new(1);
        let server = StreamServer::bind("127.0.0.1:0", |mut c: TcpStream, _| {
            let mut b = [0u8; 1];
            c.read_exact(&mut b).unwrap();
            if b[0] == b'p' {
                panic!("handler panics on purpose");
            }
            c.write_all(b"ok").unwrap();
        })
        .unwrap()
        .with_pool(pool.clone())
        .start()
        .unwrap();
        let addr = server.local_addr().unwrap();
        for _ in 0..3 {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(b"p").unwrap();
            // the panicking handler dropped the connection
            let mut rest = Vec::new();
            let _ = c.read_to_end(&mut rest);
            assert!(rest.is_empty());
        }
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"o").unwrap();
        let mut got = [0u8; 2];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ok");
        yield_until("slot back", || pool.free_count() == 1);
        server.stop(Some(Duration::from_secs(1)));
    });
}

/// gevent test_pool_full: with the pool full, a new connection is not
/// served (reads time out) until a slot frees; then it is.
#[test]
fn pool_full_leaves_a_new_connection_unserved_until_a_slot_frees() {
    bounded(|| {
        let server = StreamServer::bind("127.0.0.1:0", |mut c: TcpStream, _| {
            c.write_all(b"hello").unwrap();
            let mut sink = Vec::new();
            let _ = c.read_to_end(&mut sink); // a long request
        })
        .unwrap()
        .with_pool(Pool::new(1))
        .start()
        .unwrap();
        let addr = server.local_addr().unwrap();
        let mut long = TcpStream::connect(addr).unwrap();
        let mut got = [0u8; 5];
        long.read_exact(&mut got).unwrap();
        let mut waiting = TcpStream::connect(addr).unwrap();
        waiting
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        assert_eq!(kind(waiting.read(&mut got)), io::ErrorKind::TimedOut);
        assert_eq!(server.handlers(), 1);
        drop(long);
        waiting.set_read_timeout(None).unwrap();
        waiting.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello");
        drop(waiting);
        server.stop(Some(Duration::from_secs(1)));
        assert_eq!(server.accepted(), 2);
    });
}

/// gevent's accept loop treats EWOULDBLOCK from a non-blocking listener as
/// "nothing yet" and waits for readiness; a server given a listener in
/// non-blocking mode must still accept promptly (not back off as after an
/// accept error).
#[test]
fn stream_server_on_a_nonblocking_listener_accepts_promptly() {
    bounded(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let server = StreamServer::new(l, |mut c: TcpStream, _| {
            let _ = c.write_all(b"hi");
        })
        .start()
        .unwrap();
        let addr = server.local_addr().unwrap();
        // the server sits idle for a while, as servers do
        sylvan::sleep(Duration::from_millis(400));
        let t = Instant::now();
        let mut c = TcpStream::connect(addr).unwrap();
        let mut got = [0u8; 2];
        c.read_exact(&mut got).unwrap();
        let took = t.elapsed();
        server.stop(Some(Duration::from_secs(1)));
        assert!(
            took < Duration::from_millis(100),
            "accept took {took:?} on an idle server"
        );
    });
}

/// A handler may stop its own server: the other handlers are killed, the
/// caller finishes normally.
#[test]
fn a_handler_stopping_its_own_server_kills_the_others_and_finishes_itself() {
    bounded(|| {
        let slot: Rc<RefCell<Option<StreamServer>>> = Rc::default();
        let killed = Rc::new(Cell::new(0));
        let (s2, k) = (slot.clone(), killed.clone());
        let server = StreamServer::bind("127.0.0.1:0", move |mut c: TcpStream, _| {
            let mut b = [0u8; 1];
            c.read_exact(&mut b).unwrap();
            if b[0] == b's' {
                let s = s2.borrow().clone().unwrap();
                s.stop(Some(Duration::ZERO));
                c.write_all(b"stopped").unwrap();
            } else {
                let _flag = DropFlag(k.clone());
                sylvan::sleep(Duration::from_secs(3600));
            }
        })
        .unwrap()
        .start()
        .unwrap();
        *slot.borrow_mut() = Some(server.clone());
        let addr = server.local_addr().unwrap();
        let mut stuck = TcpStream::connect(addr).unwrap();
        stuck.write_all(b"x").unwrap();
        yield_until("stuck handler", || server.handlers() == 1);
        let mut stopper = TcpStream::connect(addr).unwrap();
        stopper.write_all(b"s").unwrap();
        let mut got = Vec::new();
        stopper.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"stopped");
        assert_eq!(killed.get(), 1);
        assert_eq!(stuck.read(&mut [0u8; 1]).unwrap(), 0);
        assert!(server.is_stopped());
        slot.borrow_mut().take();
    });
}

/// serve_forever cut off by a timeout stops the server: handlers killed,
/// the listener closed.
#[test]
fn serve_forever_cut_off_by_a_timeout_stops_the_server_and_its_handlers() {
    bounded(|| {
        let killed = Rc::new(Cell::new(0));
        let k = killed.clone();
        let server = StreamServer::bind("127.0.0.1:0", move |_c: TcpStream, _| {
            let _flag = DropFlag(k.clone());
            sylvan::sleep(Duration::from_secs(3600));
        })
        .unwrap();
        let addr = server.local_addr().unwrap();
        let c = TcpStream::connect(addr).unwrap();
        let r = sylvan::with_timeout(Duration::from_millis(50), || server.serve_forever());
        assert!(r.is_err());
        assert!(server.is_stopped());
        yield_until("handler killed", || {
            server.handlers() == 0 && killed.get() == 1
        });
        assert_eq!((&c).read(&mut [0u8; 1]).unwrap(), 0);
        let mut refused = false;
        for _ in 0..100 {
            match TcpStream::connect(addr) {
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    refused = true;
                    break;
                }
                _ => sylvan::yield_now(),
            }
        }
        assert!(refused, "the listener was closed");
    });
}

// ---------------------------------------------------------------------------
// TCP streams (gevent test__socket.py, test__socket_errors.py, std docs)
// ---------------------------------------------------------------------------

/// std/POSIX: after shutdown(Read) our reads are end of stream; writing
/// still works.
#[test]
fn read_after_own_shutdown_read_is_eof_and_writes_still_work() {
    bounded(|| {
        let (c, mut s) = tcp_pair();
        c.shutdown(Shutdown::Read).unwrap();
        assert_eq!((&c).read(&mut [0u8; 8]).unwrap(), 0);
        assert_eq!((&c).read(&mut [0u8; 8]).unwrap(), 0);
        (&c).write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"x");
    });
}

/// std/POSIX: after shutdown(Write) our writes fail with BrokenPipe (no
/// SIGPIPE), the peer sees end of stream and can still answer.
#[test]
fn write_after_own_shutdown_write_is_broken_pipe_and_peer_sees_eof() {
    bounded(|| {
        let (c, mut s) = tcp_pair();
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(kind((&c).write(b"x")), io::ErrorKind::BrokenPipe);
        assert_eq!(s.read(&mut [0u8; 8]).unwrap(), 0);
        s.write_all(b"reply").unwrap();
        let mut got = [0u8; 5];
        (&c).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"reply");
    });
}

/// EOF is sticky: read_to_end, then every read is 0, read_exact is
/// UnexpectedEof (std).
#[test]
fn end_of_stream_is_sticky_and_read_exact_reports_unexpected_eof() {
    bounded(|| {
        let (mut c, mut s) = tcp_pair();
        s.write_all(b"abc").unwrap();
        drop(s);
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"abc");
        for _ in 0..3 {
            assert_eq!(c.read(&mut [0u8; 16]).unwrap(), 0);
        }
        assert_eq!(
            kind(c.read_exact(&mut [0u8; 1])),
            io::ErrorKind::UnexpectedEof
        );
    });
}

/// gevent test__socket_errors / POSIX: a peer reset is ConnectionReset on
/// the next read, then end of stream; writes after it fail (EPIPE).
#[test]
fn peer_reset_is_connection_reset_then_eof_and_writes_fail() {
    bounded(|| {
        let (c, s) = tcp_pair();
        set_linger_zero(s.as_raw_fd());
        drop(s);
        assert_eq!(
            kind((&c).read(&mut [0u8; 8])),
            io::ErrorKind::ConnectionReset
        );
        assert_eq!((&c).read(&mut [0u8; 8]).unwrap(), 0);
        let k = kind((&c).write_all(b"after reset"));
        assert!(
            matches!(
                k,
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{k:?}"
        );
    });
}

/// A reader parked when the reset arrives gets ConnectionReset too, and
/// one parked in a drained (short-read) state as well.
#[test]
fn parked_reader_after_a_short_read_sees_the_peer_reset() {
    bounded(|| {
        let (c, mut s) = tcp_pair();
        s.write_all(b"ab").unwrap();
        let mut buf = [0u8; 64];
        assert_eq!((&c).read(&mut buf).unwrap(), 2); // short: drained
        let c = Rc::new(c);
        let c2 = c.clone();
        let reader = sylvan::spawn(move || (&*c2).read(&mut [0u8; 64]));
        sylvan::yield_now();
        assert!(!reader.is_dead());
        set_linger_zero(s.as_raw_fd());
        drop(s);
        assert_eq!(kind(reader.join().unwrap()), io::ErrorKind::ConnectionReset);
    });
}

/// gevent test__socket_timeout: the timeout fires each time, takes about
/// as long as it says, and the socket stays usable; None restores waiting.
#[test]
fn read_timeout_fires_repeatedly_and_the_socket_stays_usable() {
    bounded(|| {
        let (c, mut s) = tcp_pair();
        c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        for _ in 0..3 {
            let t = Instant::now();
            let e = (&c).read(&mut [0u8; 8]).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
            let took = t.elapsed();
            assert!(took >= Duration::from_millis(20), "{took:?}");
            assert!(took < Duration::from_secs(1), "{took:?}");
        }
        s.write_all(b"ok").unwrap();
        let mut got = [0u8; 2];
        (&c).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ok");
        c.set_read_timeout(None).unwrap();
        assert_eq!(c.read_timeout().unwrap(), None);
        let writer = sylvan::spawn(move || {
            sylvan::sleep(Duration::from_millis(40));
            s.write_all(b"late").unwrap();
            s
        });
        let mut got = [0u8; 4];
        (&c).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"late");
        drop(writer.join().unwrap());
    });
}

/// peek honours the read timeout and does not consume.
#[test]
fn peek_honours_the_read_timeout_and_does_not_consume() {
    bounded(|| {
        let (c, mut s) = tcp_pair();
        c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        assert_eq!(kind(c.peek(&mut [0u8; 8])), io::ErrorKind::TimedOut);
        s.write_all(b"hey").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(c.peek(&mut buf).unwrap(), 3);
        assert_eq!(c.peek(&mut buf).unwrap(), 3);
        assert_eq!((&c).read(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"hey");
    });
}

/// A with_timeout shorter than the read timeout wins (Elapsed); a read
/// timeout shorter than the with_timeout gives Ok(Err(TimedOut)).
#[test]
fn nested_with_timeout_and_socket_timeout_report_the_one_that_fired() {
    bounded(|| {
        let (c, _s) = tcp_pair();
        c.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let r = sylvan::with_timeout(Duration::from_millis(20), || (&c).read(&mut [0u8; 1]));
        assert!(r.is_err(), "with_timeout fired first");
        c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let r = sylvan::with_timeout(Duration::from_millis(500), || (&c).read(&mut [0u8; 1]));
        assert_eq!(
            kind(r.expect("socket timeout first")),
            io::ErrorKind::TimedOut
        );
    });
}

/// std: non-blocking mode overrides timeouts: WouldBlock at once.
#[test]
fn nonblocking_mode_wins_over_a_read_timeout() {
    bounded(|| {
        let (c, _s) = tcp_pair();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        c.set_nonblocking(true).unwrap();
        let t = Instant::now();
        assert_eq!(kind((&c).read(&mut [0u8; 1])), io::ErrorKind::WouldBlock);
        assert_eq!(kind(c.peek(&mut [0u8; 1])), io::ErrorKind::WouldBlock);
        assert!(t.elapsed() < Duration::from_millis(500));
    });
}

/// std on Linux: accept4 does not pass O_NONBLOCK on, so a stream
/// accepted from a non-blocking listener is blocking (parks here).
#[test]
fn stream_accepted_from_a_nonblocking_listener_is_blocking() {
    bounded(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        let writer = sylvan::spawn(move || {
            sylvan::yield_now();
            c.write_all(b"z").unwrap();
            c
        });
        let mut b = [0u8; 1];
        (&s).read_exact(&mut b).unwrap();
        assert_eq!(&b, b"z");
        drop(writer.join().unwrap());
    });
}

/// A with_timeout that cuts off a parked accept leaves the listener usable.
#[test]
fn accept_cut_off_by_a_timeout_leaves_the_listener_usable() {
    bounded(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let r = sylvan::with_timeout(Duration::from_millis(20), || l.accept().map(drop));
        assert!(r.is_err());
        let addr = l.local_addr().unwrap();
        let c = sylvan::spawn(move || TcpStream::connect(addr));
        let (s, peer) = l.accept().unwrap();
        let c = c.join().unwrap().unwrap();
        assert_eq!(peer, c.local_addr().unwrap());
        drop(s);
    });
}

/// Three greenlets parked in read_exact on one socket are served in the
/// order they parked, each getting a whole message from one write.
#[test]
fn three_parked_readers_get_whole_messages_in_park_order() {
    bounded(|| {
        let (c, mut s) = tcp_pair();
        let c = Rc::new(c);
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let c = c.clone();
                sylvan::spawn(move || {
                    let mut b = [0u8; 4];
                    (&*c).read_exact(&mut b).unwrap();
                    b
                })
            })
            .collect();
        sylvan::yield_now();
        s.write_all(b"aaaabbbbcccc").unwrap();
        let got: Vec<[u8; 4]> = readers.into_iter().map(|r| r.join().unwrap()).collect();
        assert_eq!(got, [*b"aaaa", *b"bbbb", *b"cccc"]);
    });
}

/// gevent test__makefile_ref: a second handle keeps the connection open;
/// the connection closes when the last handle goes.
#[test]
fn the_connection_closes_only_when_the_last_clone_is_dropped() {
    bounded(|| {
        let (c, mut s) = tcp_pair();
        let c2 = c.try_clone().unwrap();
        drop(c);
        s.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
        assert_eq!(kind(s.read(&mut [0u8; 1])), io::ErrorKind::TimedOut);
        (&c2).write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        drop(c2);
        assert_eq!(s.read(&mut b).unwrap(), 0);
    });
}

/// Dropping a handle while another greenlet is parked on a clone leaves
/// the reader parked (std: the dup'd socket stays open) and it still gets
/// the data.
#[test]
fn dropping_a_handle_leaves_a_reader_parked_on_a_clone_working() {
    bounded(|| {
        let (c, mut s) = tcp_pair();
        let c2 = c.try_clone().unwrap();
        let reader = sylvan::spawn(move || {
            let mut b = [0u8; 4];
            (&c2).read_exact(&mut b).map(|()| b)
        });
        sylvan::yield_now();
        assert!(!reader.is_dead());
        drop(c);
        sylvan::yield_now();
        assert!(!reader.is_dead(), "the reader stays parked");
        s.write_all(b"data").unwrap();
        assert_eq!(&reader.join().unwrap().unwrap(), b"data");
        // the reader's clone was the last handle
        assert_eq!(s.read(&mut [0u8; 1]).unwrap(), 0);
    });
}

/// Killing a writer parked on a full socket leaves the socket usable for
/// another writer; everything written afterwards arrives.
#[test]
fn killing_a_parked_writer_leaves_the_socket_usable_for_the_next_writer() {
    bounded(|| {
        let (c, s) = tcp_pair();
        let c = Rc::new(c);
        let c2 = c.clone();
        let writer = sylvan::spawn(move || {
            let chunk = vec![0u8; 1 << 20];
            loop {
                if (&*c2).write(&chunk).is_err() {
                    return;
                }
            }
        });
        sylvan::yield_now();
        assert!(!writer.is_dead(), "the writer parked on a full socket");
        writer.kill();
        let reader = sylvan::spawn(move || {
            let mut all = Vec::new();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = (&s).read(&mut buf).unwrap();
                if n == 0 {
                    return all;
                }
                all.extend_from_slice(&buf[..n]);
            }
        });
        (&*c).write_all(b"END").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let all = reader.join().unwrap();
        assert!(all.ends_with(b"END"));
        assert!(all[..all.len() - 3].iter().all(|&b| b == 0));
    });
}

fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 9)) as u8
}

/// gevent test__socket_send_memoryview: vectored writes of several MiB to a
/// slow reader deliver every byte in order (partial counts are honest).
#[test]
fn vectored_writes_of_several_mib_to_a_slow_reader_deliver_every_byte() {
    bounded(|| {
        const N: usize = 6 << 20;
        let (c, s) = tcp_pair();
        let data: Vec<u8> = (0..N).map(pattern).collect();
        let reader = sylvan::spawn(move || {
            let mut got = 0usize;
            let mut buf = vec![0u8; 7919];
            let mut ok = true;
            let mut reads = 0u32;
            loop {
                let n = (&s).read(&mut buf).unwrap();
                if n == 0 {
                    return (got, ok);
                }
                ok &= buf[..n]
                    .iter()
                    .enumerate()
                    .all(|(i, &b)| b == pattern(got + i));
                got += n;
                reads += 1;
                if reads.is_multiple_of(64) {
                    sylvan::sleep(Duration::from_millis(1)); // a slow reader
                }
            }
        });
        let parts: Vec<&[u8]> = data.chunks(300_001).collect();
        let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        let mut bufs = &mut slices[..];
        let mut writes = 0;
        while !bufs.is_empty() {
            let n = (&c).write_vectored(bufs).unwrap();
            assert!(n > 0);
            IoSlice::advance_slices(&mut bufs, n);
            writes += 1;
            assert!(writes < 1_000_000);
        }
        c.shutdown(Shutdown::Write).unwrap();
        let (got, ok) = reader.join().unwrap();
        assert_eq!(got, N);
        assert!(ok, "bytes arrived out of order or corrupted");
    });
}

/// Several MiB over a Unix stream to a slow reader, write_all on one
/// greenlet, reads on another.
#[test]
fn unix_stream_write_all_of_several_mib_to_a_slow_reader() {
    bounded(|| {
        const N: usize = 5 << 20;
        let (a, b) = UnixStream::pair().unwrap();
        let reader = sylvan::spawn(move || {
            let mut got = 0usize;
            let mut ok = true;
            let mut buf = vec![0u8; 4099];
            let mut reads = 0u32;
            loop {
                let n = (&b).read(&mut buf).unwrap();
                if n == 0 {
                    return (got, ok);
                }
                ok &= buf[..n]
                    .iter()
                    .enumerate()
                    .all(|(i, &x)| x == pattern(got + i));
                got += n;
                reads += 1;
                if reads.is_multiple_of(128) {
                    sylvan::sleep(Duration::from_millis(1));
                }
            }
        });
        let data: Vec<u8> = (0..N).map(pattern).collect();
        (&a).write_all(&data).unwrap();
        drop(a);
        let (got, ok) = reader.join().unwrap();
        assert_eq!(got, N);
        assert!(ok);
    });
}

/// connect_timeout to a black hole (a full backlog) is TimedOut close to
/// the deadline; to a live listener it connects.
#[test]
fn connect_timeout_black_hole_times_out_and_live_listener_connects() {
    bounded(|| {
        let (_l, addr, _fill) = full_backlog_listener();
        let t = Instant::now();
        let e = TcpStream::connect_timeout(addr, Duration::from_millis(60)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(60) && took < Duration::from_secs(2),
            "{took:?}"
        );
        let live = TcpListener::bind("127.0.0.1:0").unwrap();
        let s =
            TcpStream::connect_timeout(live.local_addr().unwrap(), Duration::from_secs(1)).unwrap();
        let (_a, peer) = live.accept().unwrap();
        assert_eq!(peer, s.local_addr().unwrap());
        // a host name goes through the resolver under the same deadline
        let port = live.local_addr().unwrap().port();
        let s2 = TcpStream::connect_timeout(("localhost", port), Duration::from_secs(2)).unwrap();
        assert_eq!(s2.peer_addr().unwrap().port(), port);
    });
}

/// gevent test__socket_errors: connecting to a closed port is
/// ConnectionRefused, with connect and with connect_timeout.
#[test]
fn connect_to_a_closed_port_is_refused_with_and_without_timeout() {
    bounded(|| {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert_eq!(
            first_error(|| TcpStream::connect(addr)).kind(),
            io::ErrorKind::ConnectionRefused
        );
        assert_eq!(
            first_error(|| TcpStream::connect_timeout(addr, Duration::from_secs(1))).kind(),
            io::ErrorKind::ConnectionRefused
        );
    });
}

// ---------------------------------------------------------------------------
// Leaks: kills and timeouts in every blocking call (child process)
// ---------------------------------------------------------------------------

/// Kills and timeouts in accept, read, write, connect, connect_timeout,
/// Unix connect/recv and a pooled server's handlers leave no descriptor
/// open and no stale wake source (counted in a child process, where no
/// other test opens descriptors meanwhile).
#[test]
fn kills_and_timeouts_in_every_blocking_call_leak_no_descriptor() {
    const NAME: &str = "net-probe-leak";
    if !is_child(NAME) {
        let out = run_child(
            "net_gevent::kills_and_timeouts_in_every_blocking_call_leak_no_descriptor",
            NAME,
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains("1 passed"), "{stdout}");
        return;
    }
    quiet();
    let _ = sylvan::net::lookup_host("localhost:1").unwrap();
    drop(TcpListener::bind("127.0.0.1:0").unwrap());
    let before = open_fds();
    bounded(|| {
        for round in 0..2 {
            // connect / connect_timeout into a black hole: killed and timed out
            let (l, full, fill) = full_backlog_listener();
            let g = sylvan::spawn(move || TcpStream::connect(full).map(drop));
            sylvan::yield_now();
            g.kill();
            let g = sylvan::spawn(move || {
                TcpStream::connect_timeout(full, Duration::from_secs(60)).map(drop)
            });
            sylvan::yield_now();
            g.kill();
            let r = sylvan::with_timeout(Duration::from_millis(10), || {
                TcpStream::connect(full).map(drop)
            });
            assert!(r.is_err());
            assert!(TcpStream::connect_timeout(full, Duration::from_millis(5)).is_err());
            drop((l, fill));

            // accept, read and write cut off by with_timeout
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            assert!(
                sylvan::with_timeout(Duration::from_millis(5), || l.accept().map(drop)).is_err()
            );
            let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (s, _) = l.accept().unwrap();
            assert!(
                sylvan::with_timeout(Duration::from_millis(5), || (&c).read(&mut [0u8; 1]))
                    .is_err()
            );
            let chunk = vec![0u8; 1 << 20];
            let r = sylvan::with_timeout(Duration::from_millis(20), || {
                loop {
                    if (&c).write(&chunk).is_err() {
                        break;
                    }
                }
            });
            assert!(r.is_err());

            // a reader killed while parked on a clone whose original is dropped
            let c2 = c.try_clone().unwrap();
            let g = sylvan::spawn(move || (&c2).read(&mut [0u8; 1]).map(drop));
            sylvan::yield_now();
            drop(c);
            g.kill();
            drop((s, l));

            // Unix: datagram recv killed, stream read timed out
            let (a, b) = UnixDatagram::pair().unwrap();
            let g = sylvan::spawn(move || b.recv(&mut [0u8; 1]).map(drop));
            sylvan::yield_now();
            g.kill();
            drop(a);
            let (a, _b) = UnixStream::pair().unwrap();
            a.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
            assert!((&a).read(&mut [0u8; 1]).is_err());

            // a pooled server stopped with handlers parked in reads
            let server = StreamServer::bind("127.0.0.1:0", |c: TcpStream, _| {
                let _ = (&c).read(&mut [0u8; 1]);
            })
            .unwrap()
            .with_pool(Pool::new(2))
            .start()
            .unwrap();
            let addr = server.local_addr().unwrap();
            let clients: Vec<_> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
            yield_until("two handlers", || server.handlers() == 2);
            server.stop(Some(Duration::from_millis(5)));
            drop(clients);
            let _ = round;
        }
    });
    assert_eq!(open_fds(), before, "descriptors leaked");
    let ev = Event::new();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ev.wait()));
    let msg = sylvan::runtime::payload_message(&*r.unwrap_err());
    assert!(
        msg.contains("would block forever"),
        "stale wake source: {msg}"
    );
}

// ---------------------------------------------------------------------------
// UDP
// ---------------------------------------------------------------------------

/// Two greenlets receiving on one UDP socket each get one datagram; a
/// receive timeout leaves the socket usable.
#[test]
fn udp_two_receivers_each_get_one_datagram_and_timeouts_leave_it_usable() {
    bounded(|| {
        let r = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let raddr = r.local_addr().unwrap();
        r.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        assert_eq!(kind(r.recv_from(&mut [0u8; 8])), io::ErrorKind::TimedOut);
        r.set_read_timeout(None).unwrap();
        let gs: Vec<_> = (0..2)
            .map(|_| {
                let r = r.clone();
                sylvan::spawn(move || {
                    let mut b = [0u8; 8];
                    let n = r.recv(&mut b).unwrap();
                    b[..n].to_vec()
                })
            })
            .collect();
        sylvan::yield_now();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(b"one", raddr).unwrap();
        tx.send_to(b"two", raddr).unwrap();
        let got: Vec<Vec<u8>> = gs.into_iter().map(|g| g.join().unwrap()).collect();
        assert_eq!(got, [b"one".to_vec(), b"two".to_vec()]);
    });
}

/// std/POSIX: a connected UDP socket only receives from its peer.
#[test]
fn udp_connected_socket_ignores_datagrams_from_others() {
    bounded(|| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let other = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.connect(peer.local_addr().unwrap()).unwrap();
        assert_eq!(a.peer_addr().unwrap(), peer.local_addr().unwrap());
        other.send_to(b"noise", a.local_addr().unwrap()).unwrap();
        peer.send_to(b"hi", a.local_addr().unwrap()).unwrap();
        let mut b = [0u8; 8];
        let n = a.recv(&mut b).unwrap();
        assert_eq!(&b[..n], b"hi");
        a.send(b"back").unwrap();
        let (n, from) = peer.recv_from(&mut b).unwrap();
        assert_eq!((&b[..n], from), (&b"back"[..], a.local_addr().unwrap()));
    });
}

// ---------------------------------------------------------------------------
// Unix domain sockets
// ---------------------------------------------------------------------------

/// std/POSIX: connecting to a missing path is NotFound, to a path whose
/// listener is gone ConnectionRefused; binding an existing path AddrInUse.
#[test]
fn unix_connect_errors_missing_path_stale_path_and_bind_in_use() {
    bounded(|| {
        let p = unix_path("probe-stale");
        assert_eq!(kind(UnixStream::connect(&p)), io::ErrorKind::NotFound);
        let l = UnixListener::bind(&p).unwrap();
        assert_eq!(kind(UnixListener::bind(&p)), io::ErrorKind::AddrInUse);
        drop(l); // the file stays
        assert_eq!(
            first_error(|| UnixStream::connect(&p)).kind(),
            io::ErrorKind::ConnectionRefused
        );
        std::fs::remove_file(&p).unwrap();
    });
}

/// A Unix stream peer closing is end of stream; shutdown(Write) is seen
/// as end of stream while the other direction still works.
#[test]
fn unix_stream_half_close_and_close_are_end_of_stream() {
    bounded(|| {
        let p = unix_path("probe-hc");
        let l = UnixListener::bind(&p).unwrap();
        let c = UnixStream::connect(&p).unwrap();
        let (s, _) = l.accept().unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!((&s).read(&mut [0u8; 4]).unwrap(), 0);
        (&s).write_all(b"back").unwrap();
        let mut got = [0u8; 4];
        (&c).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"back");
        drop(s);
        assert_eq!((&c).read(&mut [0u8; 4]).unwrap(), 0);
        // See `write_until_error` for why a write may succeed for a moment.
        assert_eq!(
            crate::util::write_until_error(&c).kind(),
            io::ErrorKind::BrokenPipe
        );
        std::fs::remove_file(&p).unwrap();
    });
}

/// A connected datagram sender parked on a full receiver queue wakes when
/// the receiver drains it (std's blocking send waits for room).
#[test]
fn unix_datagram_connected_sender_parked_on_a_full_receiver_wakes_when_it_drains() {
    bounded(|| {
        let p = unix_path("probe-dg-conn");
        let rx = UnixDatagram::bind(&p).unwrap();
        let tx = Rc::new(UnixDatagram::unbound().unwrap());
        tx.connect(&p).unwrap();
        tx.set_nonblocking(true).unwrap();
        let mut sent = 0;
        while tx.send(b"fill").is_ok() {
            sent += 1;
            assert!(sent < 100_000);
        }
        tx.set_nonblocking(false).unwrap();
        let tx2 = tx.clone();
        let sender = sylvan::spawn(move || tx2.send(b"last"));
        sylvan::yield_now();
        assert!(!sender.is_dead(), "the queue is full: the sender parks");
        let mut buf = [0u8; 8];
        for _ in 0..sent {
            assert_eq!(rx.recv(&mut buf).unwrap(), 4);
        }
        assert_eq!(sender.join().unwrap().unwrap(), 4);
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"last");
        std::fs::remove_file(&p).unwrap();
    });
}

/// An unconnected sender (send_to) parked on a receiver whose queue was
/// filled by *another* socket wakes when the receiver drains (std's
/// blocking send_to waits for room and then sends).
#[test]
fn unix_datagram_send_to_parked_on_a_receiver_filled_by_another_wakes_when_it_drains() {
    bounded(|| {
        let p = unix_path("probe-dg-unconn");
        let rx = UnixDatagram::bind(&p).unwrap();
        let filler = UnixDatagram::unbound().unwrap();
        filler.set_nonblocking(true).unwrap();
        let mut sent = 0;
        while filler.send_to(b"fill", &p).is_ok() {
            sent += 1;
            assert!(sent < 100_000);
        }
        assert!(sent > 0);
        let tx = UnixDatagram::unbound().unwrap();
        tx.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        let p2 = p.clone();
        let sender = sylvan::spawn(move || tx.send_to(b"last", &p2));
        sylvan::yield_now();
        assert!(!sender.is_dead(), "the queue is full: the sender parks");
        let mut buf = [0u8; 8];
        for _ in 0..sent {
            assert_eq!(rx.recv(&mut buf).unwrap(), 4);
        }
        let r = sender.join().unwrap();
        assert_eq!(
            r.unwrap(),
            4,
            "the sender should have been woken by the drain"
        );
        std::fs::remove_file(&p).unwrap();
    });
}

/// std: a datagram longer than the buffer is cut to fit (the rest is
/// discarded); recv_from names the sender's path.
#[test]
fn unix_datagram_truncates_and_names_the_sender() {
    bounded(|| {
        let (pa, pb) = (unix_path("probe-dg-a"), unix_path("probe-dg-b"));
        let a = UnixDatagram::bind(&pa).unwrap();
        let b = UnixDatagram::bind(&pb).unwrap();
        a.send_to(b"0123456789", &pb).unwrap();
        a.send_to(b"next", &pb).unwrap();
        let mut small = [0u8; 4];
        let (n, from) = b.recv_from(&mut small).unwrap();
        assert_eq!((n, &small), (4, b"0123"));
        assert_eq!(from.as_pathname(), Some(pa.as_path()));
        let n = b.recv(&mut [0u8; 16]).unwrap();
        assert_eq!(n, 4, "the rest of the long datagram was discarded");
        std::fs::remove_file(&pa).unwrap();
        std::fs::remove_file(&pb).unwrap();
    });
}

/// std/POSIX: send on an unconnected datagram socket is NotConnected;
/// send_to a missing path is NotFound; to a closed peer ConnectionRefused.
#[test]
fn unix_datagram_send_errors() {
    bounded(|| {
        let u = UnixDatagram::unbound().unwrap();
        assert_eq!(kind(u.send(b"x")), io::ErrorKind::NotConnected);
        let p = unix_path("probe-dg-missing");
        assert_eq!(kind(u.send_to(b"x", &p)), io::ErrorKind::NotFound);
        let r = UnixDatagram::bind(&p).unwrap();
        u.connect(&p).unwrap();
        drop(r);
        assert_eq!(
            first_error(|| u.send(b"x")).kind(),
            io::ErrorKind::ConnectionRefused
        );
        std::fs::remove_file(&p).unwrap();
    });
}

// ---------------------------------------------------------------------------
// Host resolution (gevent test__socket_dns.py)
// ---------------------------------------------------------------------------

fn std_lookup(s: &str) -> io::Result<Vec<SocketAddr>> {
    std::net::ToSocketAddrs::to_socket_addrs(s).map(|i| i.collect())
}

/// gevent test__socket_dns compares the cooperative resolver with the
/// system's: same addresses (as a set), same error kinds.
#[test]
fn lookup_host_agrees_with_std() {
    bounded(|| {
        for s in ["localhost:80", "127.0.0.1:8080", "[::1]:443", "localhost:0"] {
            let mut ours = sylvan::net::lookup_host(s).unwrap();
            let mut theirs = std_lookup(s).unwrap();
            ours.sort();
            ours.dedup();
            theirs.sort();
            theirs.dedup();
            assert_eq!(ours, theirs, "{s}");
        }
        for bad in [
            "localhost",
            "localhost:99999",
            "no-such-host.invalid:80",
            ":80",
        ] {
            if bad.contains(".invalid") && !crate::util::bad_host_fails_fast() {
                continue;
            }
            let ours = sylvan::net::lookup_host(bad).unwrap_err();
            let theirs = std_lookup(bad).unwrap_err();
            assert_eq!(ours.kind(), theirs.kind(), "{bad}: {ours} vs {theirs}");
        }
    });
}

/// Many greenlets resolving at once all succeed (the lookups go to the
/// thread pool, the hub keeps running).
#[test]
fn many_concurrent_lookups_all_succeed() {
    bounded(|| {
        let ticks = Rc::new(Cell::new(0u32));
        let t2 = ticks.clone();
        let ticker = sylvan::spawn(move || {
            for _ in 0..1000 {
                t2.set(t2.get() + 1);
                sylvan::sleep(Duration::from_millis(1));
            }
        });
        let gs: Vec<_> = (0..20u16)
            .map(|i| sylvan::spawn(move || sylvan::net::lookup_host(("localhost", 1000 + i))))
            .collect();
        for (i, g) in gs.into_iter().enumerate() {
            let addrs = g.join().unwrap().unwrap();
            assert!(!addrs.is_empty());
            assert!(
                addrs
                    .iter()
                    .all(|a| a.port() == 1000 + i as u16 && a.ip().is_loopback())
            );
        }
        ticker.kill();
    });
}

// ---------------------------------------------------------------------------
// More server and stream probes
// ---------------------------------------------------------------------------

/// gevent's BaseServer closes itself on a fatal accept error (EBADF,
/// EINVAL, ENOTSOCK: `is_fatal_error` -> `close()`), so serve_forever
/// returns (here with that error). Shutting the listening socket down makes
/// accept fail with EINVAL for good.
#[test]
fn fatal_accept_error_closes_the_server_and_serve_forever_returns() {
    bounded(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = l.as_raw_fd();
        let server = StreamServer::new(l, |_c: TcpStream, _| {});
        let s2 = server.clone();
        let breaker = sylvan::spawn(move || {
            yield_until("started", || s2.is_started());
            sylvan::yield_now();
            // SAFETY: shutdown(2) on the listener's open descriptor.
            assert_eq!(unsafe { libc::shutdown(fd, libc::SHUT_RDWR) }, 0);
        });
        let r = sylvan::with_timeout(Duration::from_secs(1), || server.serve_forever());
        breaker.join().unwrap();
        let r =
            r.expect("serve_forever still running 1 s after accept started failing with EINVAL");
        let e = r.expect_err("serve_forever reports the accept error that ended it");
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}");
        assert!(server.is_stopped() && !server.is_started());
    });
}

/// gevent: closing a listener wakes the greenlet parked in its accept with
/// an error. Here: the listening socket shut down from another greenlet.
#[test]
fn accept_parked_on_a_listener_shut_down_elsewhere_wakes_with_an_error() {
    bounded(|| {
        let l = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let l2 = l.clone();
        let acceptor = sylvan::spawn(move || l2.accept().map(drop));
        sylvan::yield_now();
        assert!(!acceptor.is_dead());
        // SAFETY: shutdown(2) on the listener's open descriptor.
        assert_eq!(unsafe { libc::shutdown(l.as_raw_fd(), libc::SHUT_RDWR) }, 0);
        let e = acceptor.join().unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    });
}

/// gevent test_sendall_timeout: sending far more than the buffers hold to
/// a peer that never reads fails with a timeout about the timeout later;
/// test_empty_send: an empty send is 0 bytes at once.
#[test]
fn write_all_with_a_write_timeout_to_a_non_reading_peer_times_out_promptly() {
    bounded(|| {
        let (c, _s) = tcp_pair();
        assert_eq!((&c).write(b"").unwrap(), 0);
        (&c).write_all(b"").unwrap();
        c.set_write_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let data = vec![b'h'; 64 << 20];
        let t = Instant::now();
        let e = (&c).write_all(&data).unwrap_err();
        let took = t.elapsed();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(
            took >= Duration::from_millis(90) && took < Duration::from_millis(1000),
            "{took:?}"
        );
    });
}

/// gevent test_makefile_timeout: a buffered line read times out with the
/// socket's timeout; the data that comes later is still read in full.
#[test]
fn buffered_read_line_times_out_and_the_line_still_arrives_later() {
    use std::io::BufRead;
    bounded(|| {
        let (c, mut s) = tcp_pair();
        c.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
        let mut r = std::io::BufReader::new(&c);
        let mut line = String::new();
        assert_eq!(kind(r.read_line(&mut line)), io::ErrorKind::TimedOut);
        s.write_all(b"hello\nworld\n").unwrap();
        line.clear();
        r.read_line(&mut line).unwrap();
        assert_eq!(line, "hello\n");
        line.clear();
        r.read_line(&mut line).unwrap();
        assert_eq!(line, "world\n");
        drop(s);
        line.clear();
        assert_eq!(r.read_line(&mut line).unwrap(), 0);
    });
}

/// gevent examples/portforwarder.py: a StreamServer that connects to a
/// backend and relays both directions with two greenlets (io::copy over
/// `&TcpStream`), passing half-closes on.
#[test]
fn port_forwarder_relays_both_ways_and_passes_the_half_close_on() {
    bounded(|| {
        // backend: echo until end of stream, then close
        let backend = StreamServer::bind("127.0.0.1:0", |c: TcpStream, _| {
            let _ = io::copy(&mut &c, &mut &c);
        })
        .unwrap()
        .start()
        .unwrap();
        let target = backend.local_addr().unwrap();
        let forwarder = StreamServer::bind("127.0.0.1:0", move |client: TcpStream, _| {
            let up = TcpStream::connect(target).unwrap();
            let (client2, up2) = (client.try_clone().unwrap(), up.try_clone().unwrap());
            let to_backend = sylvan::spawn(move || {
                let _ = io::copy(&mut &client2, &mut &up2);
                let _ = up2.shutdown(Shutdown::Write);
            });
            let _ = io::copy(&mut &up, &mut &client);
            let _ = client.shutdown(Shutdown::Write);
            to_backend.join().unwrap();
        })
        .unwrap()
        .start()
        .unwrap();
        let c = TcpStream::connect(forwarder.local_addr().unwrap()).unwrap();
        let data: Vec<u8> = (0..300_000).map(pattern).collect();
        let d2 = data.clone();
        let c2 = c.try_clone().unwrap();
        let writer = sylvan::spawn(move || {
            (&c2).write_all(&d2).unwrap();
            c2.shutdown(Shutdown::Write).unwrap();
        });
        let mut back = Vec::new();
        (&c).read_to_end(&mut back).unwrap();
        writer.join().unwrap();
        assert_eq!(back.len(), data.len());
        assert!(back == data);
        forwarder.stop(Some(Duration::from_secs(1)));
        backend.stop(Some(Duration::from_secs(1)));
        assert_eq!(forwarder.handlers() + backend.handlers(), 0);
    });
}

/// stop(timeout) returns as soon as the handlers finish on their own,
/// without killing them.
#[test]
fn stop_with_a_timeout_returns_as_soon_as_the_handlers_finish() {
    bounded(|| {
        let finished = Rc::new(Cell::new(0));
        let f = finished.clone();
        let server = StreamServer::bind("127.0.0.1:0", move |mut c: TcpStream, _| {
            sylvan::sleep(Duration::from_millis(30));
            c.write_all(b"done").unwrap();
            f.set(f.get() + 1);
        })
        .unwrap()
        .start()
        .unwrap();
        let mut c = TcpStream::connect(server.local_addr().unwrap()).unwrap();
        yield_until("the handler runs", || server.handlers() == 1);
        let t = Instant::now();
        server.stop(Some(Duration::from_secs(3)));
        let took = t.elapsed();
        assert!(took < Duration::from_secs(1), "{took:?}");
        assert_eq!(finished.get(), 1, "finished normally, not killed");
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"done");
    });
}

/// gevent stop() with a pool: handlers still running after the timeout
/// are killed and the pool is empty again.
#[test]
fn pooled_server_stop_kills_the_handlers_and_empties_the_pool() {
    bounded(|| {
        let pool = Pool::new(3);
        let server = StreamServer::bind("127.0.0.1:0", |c: TcpStream, _| {
            let _ = (&c).read(&mut [0u8; 1]);
        })
        .unwrap()
        .with_pool(pool.clone())
        .start()
        .unwrap();
        let addr = server.local_addr().unwrap();
        let clients: Vec<_> = (0..5).map(|_| TcpStream::connect(addr).unwrap()).collect();
        yield_until("pool full", || pool.free_count() == 0);
        assert_eq!(server.handlers(), 3, "never more than the pool's size");
        server.stop(Some(Duration::from_millis(20)));
        assert_eq!(pool.free_count(), 3);
        assert!(pool.is_empty());
        assert_eq!(server.handlers(), 0);
        // the three handled connections were closed by their killed
        // handlers; the two left in the backlog were reset or closed
        for c in &clients {
            match (&*c).read(&mut [0u8; 1]) {
                Ok(0) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
                r => panic!("{r:?}"),
            }
        }
    });
}

/// A connected datagram sender parked on a full receiver is woken with
/// ConnectionRefused when the receiver goes away (std's blocking send
/// fails then too).
#[test]
fn unix_datagram_sender_parked_on_a_full_receiver_fails_when_it_closes() {
    bounded(|| {
        let p = unix_path("probe-dg-close");
        let rx = UnixDatagram::bind(&p).unwrap();
        let tx = Rc::new(UnixDatagram::unbound().unwrap());
        tx.connect(&p).unwrap();
        tx.set_nonblocking(true).unwrap();
        let mut sent = 0;
        while tx.send(b"fill").is_ok() {
            sent += 1;
            assert!(sent < 100_000);
        }
        tx.set_nonblocking(false).unwrap();
        let tx2 = tx.clone();
        let sender = sylvan::spawn(move || tx2.send(b"last"));
        sylvan::yield_now();
        assert!(!sender.is_dead());
        drop(rx);
        let r = sender.join().unwrap();
        assert_eq!(kind(r), io::ErrorKind::ConnectionRefused);
        std::fs::remove_file(&p).unwrap();
    });
}

/// gevent examples/udp_server.py + udp_client.py: a UDP echo server in a
/// greenlet answers clients that each wait with a timeout.
#[test]
fn udp_echo_server_answers_many_clients() {
    bounded(|| {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let echo = sylvan::spawn(move || {
            let mut buf = [0u8; 64];
            for _ in 0..10 {
                let (n, from) = server.recv_from(&mut buf).unwrap();
                server.send_to(&buf[..n], from).unwrap();
            }
        });
        let clients: Vec<_> = (0..10u8)
            .map(|i| {
                sylvan::spawn(move || {
                    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
                    c.connect(addr).unwrap();
                    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    c.send(&[i; 3]).unwrap();
                    let mut b = [0u8; 8];
                    let n = c.recv(&mut b).unwrap();
                    b[..n].to_vec()
                })
            })
            .collect();
        for (i, c) in clients.into_iter().enumerate() {
            assert_eq!(c.join().unwrap(), vec![i as u8; 3]);
        }
        echo.join().unwrap();
    });
}

/// gevent stop(): close() first, then wait for the handlers, so new
/// connections are refused while stop waits.
#[test]
fn connections_are_refused_while_stop_waits_for_the_handlers() {
    bounded(|| {
        let server = StreamServer::bind("127.0.0.1:0", |_c: TcpStream, _| {
            sylvan::sleep(Duration::from_secs(3600));
        })
        .unwrap()
        .start()
        .unwrap();
        let addr = server.local_addr().unwrap();
        let _c = TcpStream::connect(addr).unwrap();
        yield_until("the handler runs", || server.handlers() == 1);
        let s2 = server.clone();
        let stopper = sylvan::spawn(move || s2.stop(Some(Duration::from_millis(200))));
        yield_until("stop began", || server.is_stopped());
        sylvan::yield_now();
        assert!(!stopper.is_dead(), "stop is waiting for the stuck handler");
        assert_eq!(
            first_error(|| TcpStream::connect(addr)).kind(),
            io::ErrorKind::ConnectionRefused
        );
        stopper.join().unwrap();
        assert_eq!(server.handlers(), 0);
    });
}

/// std (dup'd descriptors): a listener clone keeps the socket open and
/// accepting after the original handle is dropped, including for a
/// greenlet already parked in accept on the clone.
#[test]
fn listener_clone_keeps_accepting_after_the_original_is_dropped() {
    bounded(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let l2 = l.try_clone().unwrap();
        let acceptor = sylvan::spawn(move || l2.accept().map(|(_, peer)| peer));
        sylvan::yield_now();
        assert!(!acceptor.is_dead());
        drop(l);
        sylvan::yield_now();
        assert!(!acceptor.is_dead(), "still parked");
        let c = TcpStream::connect(addr).unwrap();
        assert_eq!(acceptor.join().unwrap().unwrap(), c.local_addr().unwrap());
        // the acceptor's clone was the last handle: closed now
        assert_eq!(
            first_error(|| TcpStream::connect(addr)).kind(),
            io::ErrorKind::ConnectionRefused
        );
    });
}

/// std: a blocking recv on a datagram socket whose read half is shut down
/// returns 0. sylvan emulates that with a flag set by its own shutdown;
/// a socket adopted with from_std after the shutdown (or passed through
/// into_std/from_std) must behave the same instead of parking for good.
#[test]
fn unix_datagram_adopted_after_shutdown_read_returns_zero_like_std() {
    bounded(|| {
        // what std does, on a blocking socket
        let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        b.shutdown(Shutdown::Read).unwrap();
        b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert_eq!(b.recv(&mut [0u8; 4]).unwrap(), 0, "std returns 0");
        // adopted by sylvan after the shutdown
        let b = UnixDatagram::from_std(b).unwrap();
        b.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let adopted = b.recv(&mut [0u8; 4]).map_err(|e| e.kind());
        drop(a);
        // round trip through std
        let (_a, c) = UnixDatagram::pair().unwrap();
        c.shutdown(Shutdown::Read).unwrap();
        assert_eq!(c.recv(&mut [0u8; 4]).unwrap(), 0);
        let c = UnixDatagram::from_std(c.into_std().unwrap()).unwrap();
        c.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let round_trip = c.recv(&mut [0u8; 4]).map_err(|e| e.kind());
        assert_eq!((adopted, round_trip), (Ok(0), Ok(0)));
    });
}
