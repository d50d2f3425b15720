//! Probe round 14: a resource-leak sweep. A greenlet is parked at every
//! blocking point (sockets of every kind, connect, name resolution,
//! `spawn_blocking`, every `sylvan::sync` wait, join, sleep, wait/iwait,
//! a full `Pool`, `StreamServer` handlers, `sylvan::ureq` requests) and its
//! wait is ended every way it can be (kill, `with_timeout` expiry, socket
//! timeout, normal completion, the peer closing). Afterwards nothing may be
//! left behind: file descriptors (counted only in child processes, where
//! no other test opens any), hub timers, live greenlets and stacks
//! (`sylvan::stats`), destructors run exactly once, and the next user of
//! the same socket or primitive still works.
//!
//! Tests marked `#[ignore = "BUG: ..."]` show a sylvan bug; the rest are
//! regression checks that pass.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sylvan::net::{StreamServer, TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use sylvan::pool::Pool;
use sylvan::sync::{AsyncResult, Channel, Event, JoinableQueue, Mutex, Queue, Semaphore};
use sylvan::{Elapsed, Greenlet, GreenletId, HubStats, WaitKind, spawn, stats, with_timeout};
use sylvan::{sleep, yield_now};

use crate::util::{DropFlag, bounded, in_child, quiet, yield_until};

const MS: Duration = Duration::from_millis(1);
/// A wait that never ends by itself within a test.
const LONG: Duration = Duration::from_secs(30);
/// The timeouts that end waits in these tests.
const SHORT: Duration = Duration::from_millis(10);

// ================================================================ helpers

/// Descriptors open in this process now.
fn fds() -> usize {
    // read_dir's own descriptor is counted every time, so counts compare.
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Descriptors open now, listed (for failure messages).
fn fd_list() -> String {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let l = std::fs::read_link(e.path()).ok()?;
            Some(format!(
                "{}->{}",
                e.file_name().to_string_lossy(),
                l.display()
            ))
        })
        .collect();
    v.sort();
    v.join(" ")
}

/// A drop counter and the flag that bumps it.
fn flag() -> (Rc<Cell<u32>>, DropFlag) {
    let c = Rc::new(Cell::new(0));
    (c.clone(), DropFlag(c))
}

/// What greenlet `id` waits on now (None when it is not alive).
fn wait_of(id: GreenletId) -> Option<WaitKind> {
    sylvan::dump()
        .greenlets
        .into_iter()
        .find(|g| g.id == id)
        .map(|g| g.wait)
}

/// Lets `g` run until it parks on something `what` accepts.
fn park_on<T>(g: &Greenlet<T>, what: &str, pred: impl Fn(&WaitKind) -> bool) {
    let id = g.id();
    yield_until(what, || wait_of(id).is_some_and(|w| pred(&w)));
}

fn is_io(op: &'static str) -> impl Fn(&WaitKind) -> bool {
    move |w| matches!(w, WaitKind::Io { op: o, .. } if *o == op)
}

fn is_sync(w: &WaitKind) -> bool {
    matches!(w, WaitKind::Sync(_))
}

/// A snapshot of what must come back once the greenlets of a case are dead.
struct Base {
    st: HubStats,
    fds: Option<usize>,
}

impl Base {
    /// Takes it now; with `count_fds` (child processes only) descriptors too.
    fn take(count_fds: bool) -> Base {
        Base {
            st: stats(),
            fds: count_fds.then(fds),
        }
    }

    /// Waits (bounded) for the greenlets spawned since to die, then asserts
    /// that timers, stacks and (if counted) descriptors are back.
    fn check(&self, what: &str) {
        yield_until(&format!("{what}: greenlets dead"), || {
            stats().alive == self.st.alive
        });
        // let cancelled ready entries drain
        yield_now();
        let s = stats();
        assert_eq!(
            s.timers, self.st.timers,
            "{what}: hub timers left armed ({s:?})"
        );
        assert_eq!(s.ready, 0, "{what}: ready queue not empty ({s:?})");
        if self.st.alive == 0 {
            assert_eq!(
                s.stacks_mapped - s.stacks_unmapped,
                s.stacks_pooled as u64,
                "{what}: a stack is neither pooled nor unmapped ({s:?})"
            );
        }
        if let Some(n) = self.fds {
            // a pool thread may still be finishing a job whose result it drops
            for _ in 0..200 {
                if fds() == n {
                    break;
                }
                sleep(MS);
            }
            assert_eq!(fds(), n, "{what}: descriptors leaked: {}", fd_list());
        }
    }
}

/// How a parked wait is ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// `kill` from main.
    Kill,
    /// `with_timeout(SHORT)` around the wait, inside the greenlet.
    Timeout,
    /// A socket read/write timeout of SHORT.
    SockTimeout,
    /// The wait completes normally (data, a connection, a datagram).
    Done,
    /// The peer closes.
    PeerClose,
}

use End::*;

/// A named wait for `sync_case`.
type Case = (&'static str, Box<dyn FnOnce()>);

type Outcome = Result<Result<io::Result<usize>, Elapsed>, sylvan::Error>;

/// Spawns `body` holding a drop flag (under `with_timeout(SHORT)` when
/// `end` is `Timeout`), lets it park on `op`, then ends the wait: `Kill`
/// kills it, `Done` calls `complete`, `PeerClose` calls `close`, the
/// timeout modes just wait. Asserts the flag dropped once and the outcome
/// fits the mode; returns the outcome.
fn io_case(
    end: End,
    op: &'static str,
    body: impl FnOnce() -> io::Result<usize> + 'static,
    complete: impl FnOnce(),
    close: impl FnOnce(),
) -> Outcome {
    let (drops, f) = flag();
    let g = spawn(move || {
        let _f = f;
        if end == Timeout {
            with_timeout(SHORT, body)
        } else {
            Ok(body())
        }
    });
    park_on(&g, op, is_io(op));
    match end {
        Kill => g.kill(),
        Done => complete(),
        PeerClose => close(),
        Timeout | SockTimeout => {}
    }
    let out = bounded(|| g.join());
    assert_eq!(drops.get(), 1, "{op}/{end:?}: destructor runs");
    match end {
        Kill => assert!(
            matches!(&out, Err(e) if e.is_killed()),
            "{op}/{end:?}: {out:?}"
        ),
        Timeout => assert!(matches!(&out, Ok(Err(_))), "{op}/{end:?}: {out:?}"),
        SockTimeout => assert!(
            matches!(&out, Ok(Ok(Err(e))) if e.kind() == io::ErrorKind::TimedOut),
            "{op}/{end:?}: {out:?}"
        ),
        Done => assert!(
            matches!(&out, Ok(Ok(Ok(n))) if *n > 0),
            "{op}/{end:?}: {out:?}"
        ),
        PeerClose => assert!(matches!(&out, Ok(Ok(_))), "{op}/{end:?}: {out:?}"),
    }
    out
}

/// A connected loopback pair: (client, server side).
fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    (a, b)
}

/// A fresh path for a Unix socket.
fn sock_path(tag: &str) -> std::path::PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "sylvan-p14-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

fn read_one(s: &impl ReadRef) -> io::Result<usize> {
    let mut buf = [0u8; 64];
    s.read_ref(&mut buf)
}

/// `Read` through a shared reference, for the socket types.
trait ReadRef {
    fn read_ref(&self, buf: &mut [u8]) -> io::Result<usize>;
}

impl ReadRef for TcpStream {
    fn read_ref(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut r = self;
        r.read(buf)
    }
}

impl ReadRef for UnixStream {
    fn read_ref(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut r = self;
        r.read(buf)
    }
}

/// Writes until `limit` bytes went out (parking on the full buffer).
fn write_lots(mut w: impl Write, limit: usize) -> io::Result<usize> {
    let buf = vec![7u8; 256 * 1024];
    let mut total = 0;
    while total < limit {
        total += w.write(&buf[..buf.len().min(limit - total)])?;
    }
    Ok(total)
}

/// Reads until `n` bytes came in (or the end).
fn drain(mut r: impl Read, n: usize) -> usize {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    while total < n {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => total += k,
        }
    }
    total
}

const ALL: [End; 5] = [Kill, Timeout, SockTimeout, Done, PeerClose];
const BIG: usize = 64 << 20;

// ================================================================ sockets

// A TCP read parked and ended every way: no descriptor, timer or stack
// stays behind, and after a kill the same socket serves the next reader.
#[test]
fn tcp_read_ended_every_way_leaks_nothing() {
    in_child(
        "probes14::tcp_read_ended_every_way_leaks_nothing",
        "tcp_read",
        || {
            quiet();
            let base = Base::take(true);
            for end in ALL {
                let (a, b) = tcp_pair();
                if end == SockTimeout {
                    a.set_read_timeout(Some(SHORT)).unwrap();
                }
                let a = Rc::new(a);
                let a2 = a.clone();
                let b = Rc::new(Cell::new(Some(b)));
                let (b1, b2) = (b.clone(), b.clone());
                let out = io_case(
                    end,
                    "read",
                    move || read_one(&*a2),
                    move || {
                        let s = b1.take().unwrap();
                        (&s).write_all(b"hi").unwrap();
                        b1.set(Some(s));
                    },
                    move || drop(b2.take()),
                );
                if end == PeerClose {
                    assert!(matches!(out, Ok(Ok(Ok(0)))), "{out:?}");
                }
                if end == Kill {
                    // the next reader on the same socket is served
                    let a3 = a.clone();
                    let g = spawn(move || read_one(&*a3));
                    park_on(&g, "second read", is_io("read"));
                    let s = b.take().unwrap();
                    (&s).write_all(b"again").unwrap();
                    assert_eq!(bounded(|| g.join()).unwrap().unwrap(), 5);
                    b.set(Some(s));
                }
                drop((a, b));
                base.check(&format!("tcp read/{end:?}"));
            }
        },
    );
}

// A write parked on a full send buffer, ended every way.
#[test]
fn tcp_write_on_full_buffer_ended_every_way_leaks_nothing() {
    in_child(
        "probes14::tcp_write_on_full_buffer_ended_every_way_leaks_nothing",
        "tcp_write",
        || {
            quiet();
            let base = Base::take(true);
            for end in ALL {
                let (a, b) = tcp_pair();
                if end == SockTimeout {
                    a.set_write_timeout(Some(SHORT)).unwrap();
                }
                let a = Rc::new(a);
                let a2 = a.clone();
                let b = Rc::new(Cell::new(Some(b)));
                let (b1, b2) = (b.clone(), b.clone());
                let out = io_case(
                    end,
                    "write",
                    move || write_lots(&*a2, BIG),
                    move || {
                        let s = b1.take().unwrap();
                        assert_eq!(drain(&s, BIG), BIG);
                        b1.set(Some(s));
                    },
                    move || drop(b2.take()),
                );
                if end == PeerClose {
                    assert!(matches!(out, Ok(Ok(Err(_)))), "{out:?}");
                }
                if end == Kill {
                    // the next writer on the same socket is served once the
                    // peer reads
                    let a3 = a.clone();
                    let g = spawn(move || write_lots(&*a3, 1 << 20));
                    let s = b.take().unwrap();
                    let got = drain(&s, 1);
                    assert!(got > 0);
                    s.set_read_timeout(Some(50 * MS)).unwrap();
                    let mut buf = vec![0u8; 1 << 20];
                    while !g.is_dead() {
                        let _ = (&s).read(&mut buf);
                    }
                    assert!(bounded(|| g.join()).unwrap().unwrap() >= 1 << 20);
                    b.set(Some(s));
                }
                drop((a, b));
                base.check(&format!("tcp write/{end:?}"));
            }
        },
    );
}

// accept parked and ended by kill, with_timeout or a connection; a killed
// acceptor leaves the listener to the next one.
#[test]
fn tcp_accept_ended_every_way_leaks_nothing() {
    in_child(
        "probes14::tcp_accept_ended_every_way_leaks_nothing",
        "tcp_accept",
        || {
            quiet();
            let base = Base::take(true);
            for end in [Kill, Timeout, Done] {
                let l = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
                let addr = l.local_addr().unwrap();
                let l2 = l.clone();
                let client = Rc::new(Cell::new(None));
                let c2 = client.clone();
                let _ = io_case(
                    end,
                    "accept",
                    move || {
                        l2.accept()
                            .map(|(s, _)| s.peer_addr().unwrap().port() as usize)
                    },
                    move || c2.set(Some(TcpStream::connect(addr).unwrap())),
                    || {},
                );
                drop(client.take());
                if end == Kill {
                    let l3 = l.clone();
                    let g = spawn(move || l3.accept().map(|(_, p)| p));
                    park_on(&g, "second accept", is_io("accept"));
                    let c = TcpStream::connect(addr).unwrap();
                    assert_eq!(
                        bounded(|| g.join()).unwrap().unwrap(),
                        c.local_addr().unwrap()
                    );
                }
                drop(l);
                base.check(&format!("tcp accept/{end:?}"));
            }
        },
    );
}

// connect parked on a listener whose backlog is full, ended by kill,
// with_timeout and connect_timeout, a hundred times each: the half-open
// sockets are closed.
#[test]
fn tcp_connect_to_full_backlog_ended_every_way_leaks_nothing() {
    in_child(
        "probes14::tcp_connect_to_full_backlog_ended_every_way_leaks_nothing",
        "tcp_connect",
        || {
            quiet();
            let (l, addr, fill) = crate::net::full_backlog_listener();
            let base = Base::take(true);
            for end in [Kill, Timeout, SockTimeout] {
                for _ in 0..100 {
                    let (drops, f) = flag();
                    let g = spawn(move || {
                        let _f = f;
                        match end {
                            Timeout => with_timeout(SHORT, || TcpStream::connect(addr)).map(|_| ()),
                            SockTimeout => {
                                let e = TcpStream::connect_timeout(addr, SHORT).unwrap_err();
                                assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
                                Ok(())
                            }
                            _ => {
                                let _ = TcpStream::connect(addr);
                                Ok(())
                            }
                        }
                    });
                    park_on(&g, "connect", is_io("connect"));
                    if end == Kill {
                        g.kill();
                    }
                    let out = g.join();
                    assert_eq!(drops.get(), 1);
                    match end {
                        Kill => assert!(out.unwrap_err().is_killed()),
                        Timeout => assert!(out.unwrap().is_err()),
                        _ => out.unwrap().unwrap(),
                    }
                }
                base.check(&format!("tcp connect/{end:?}"));
            }
            drop((l, fill));
        },
    );
}

// A connect by host name killed while the name resolves on the thread pool
// and while it connects to the second address: nothing stays behind once
// the pool job ends.
#[test]
fn connect_by_name_killed_while_resolving_or_connecting_leaks_nothing() {
    in_child(
        "probes14::connect_by_name_killed_while_resolving_or_connecting_leaks_nothing",
        "by_name",
        || {
            quiet();
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            // warm the resolver (NSS modules, /etc/hosts) before counting
            drop(TcpStream::connect(("localhost", port)).unwrap());
            drop(l.accept().unwrap());
            // one pool thread, kept busy: the lookups queue behind it, so
            // each greenlet is surely parked on its job when killed
            let base = Base::take(true);
            sylvan::set_blocking_threads(1);
            let (btx, brx) = std::sync::mpsc::channel::<()>();
            let blocker = spawn(move || {
                sylvan::spawn_blocking(move || {
                    let _ = brx.recv();
                })
            });
            park_on(&blocker, "blocker", |w| matches!(w, WaitKind::ThreadPool));
            for i in 0..50 {
                let (drops, f) = flag();
                let g = spawn(move || {
                    let _f = f;
                    TcpStream::connect(("localhost", port)).map(|_| ())
                });
                park_on(&g, "resolve", |w| matches!(w, WaitKind::ThreadPool));
                assert!(stats().thread_pool_queue > i, "the lookup is queued");
                g.kill();
                assert!(g.join().unwrap_err().is_killed());
                assert_eq!(drops.get(), 1);
            }
            btx.send(()).unwrap();
            bounded(|| blocker.join()).unwrap();
            yield_until("queued lookups ran", || stats().thread_pool_queue == 0);
            // the listener may have queued connections: accept and drop them
            l.set_nonblocking(true).unwrap();
            while l.accept().is_ok() {}
            base.check("connect by name killed while resolving");
            // the runtime keeps working: a later lookup connects
            let s = TcpStream::connect(("localhost", port)).unwrap();
            drop((s, l.accept().unwrap()));
            base.check("connect by name afterwards");

            let (fl, faddr, fill) = crate::net::full_backlog_listener();
            let base = Base::take(true);
            for _ in 0..20 {
                let g = spawn(move || TcpStream::connect(("localhost", faddr.port())).map(|_| ()));
                park_on(&g, "connect by name", is_io("connect"));
                g.kill();
                assert!(g.join().unwrap_err().is_killed());
            }
            base.check("connect by name killed while connecting");
            drop((fl, fill));
        },
    );
}

// UDP recv_from parked and ended every way.
#[test]
fn udp_recv_from_ended_every_way_leaks_nothing() {
    in_child(
        "probes14::udp_recv_from_ended_every_way_leaks_nothing",
        "udp",
        || {
            quiet();
            let base = Base::take(true);
            for end in [Kill, Timeout, SockTimeout, Done] {
                let s = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
                if end == SockTimeout {
                    s.set_read_timeout(Some(SHORT)).unwrap();
                }
                let addr = s.local_addr().unwrap();
                let s2 = s.clone();
                let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
                let _ = io_case(
                    end,
                    "read",
                    move || {
                        let mut buf = [0u8; 64];
                        s2.recv_from(&mut buf).map(|(n, _)| n)
                    },
                    || {
                        peer.send_to(b"dgram", addr).unwrap();
                    },
                    || {},
                );
                if end == Kill {
                    let s3 = s.clone();
                    let g = spawn(move || {
                        let mut buf = [0u8; 64];
                        s3.recv_from(&mut buf).map(|(n, _)| n)
                    });
                    park_on(&g, "second recv", |w| matches!(w, WaitKind::Io { .. }));
                    peer.send_to(b"abc", addr).unwrap();
                    assert_eq!(bounded(|| g.join()).unwrap().unwrap(), 3);
                }
                drop((s, peer));
                base.check(&format!("udp/{end:?}"));
            }
        },
    );
}

// Unix stream reads and Unix accepts parked and ended every way.
#[test]
fn unix_read_and_accept_ended_every_way_leak_nothing() {
    in_child(
        "probes14::unix_read_and_accept_ended_every_way_leak_nothing",
        "unix",
        || {
            quiet();
            let base = Base::take(true);
            for end in ALL {
                let (a, b) = UnixStream::pair().unwrap();
                if end == SockTimeout {
                    a.set_read_timeout(Some(SHORT)).unwrap();
                }
                let a = Rc::new(a);
                let a2 = a.clone();
                let b = Rc::new(Cell::new(Some(b)));
                let (b1, b2) = (b.clone(), b.clone());
                let out = io_case(
                    end,
                    "read",
                    move || read_one(&*a2),
                    move || {
                        let s = b1.take().unwrap();
                        (&s).write_all(b"hi").unwrap();
                        b1.set(Some(s));
                    },
                    move || drop(b2.take()),
                );
                if end == PeerClose {
                    assert!(matches!(out, Ok(Ok(Ok(0)))), "{out:?}");
                }
                if end == Kill {
                    let a3 = a.clone();
                    let g = spawn(move || read_one(&*a3));
                    park_on(&g, "second unix read", is_io("read"));
                    let s = b.take().unwrap();
                    (&s).write_all(b"again").unwrap();
                    assert_eq!(bounded(|| g.join()).unwrap().unwrap(), 5);
                    b.set(Some(s));
                }
                drop((a, b));
                base.check(&format!("unix read/{end:?}"));
            }
            for end in [Kill, Timeout, Done] {
                let path = sock_path("acc");
                let l = Rc::new(UnixListener::bind(&path).unwrap());
                let l2 = l.clone();
                let client = Rc::new(Cell::new(None));
                let c2 = client.clone();
                let p2 = path.clone();
                let _ = io_case(
                    end,
                    "accept",
                    move || l2.accept().map(|_| 1),
                    move || c2.set(Some(UnixStream::connect(&p2).unwrap())),
                    || {},
                );
                drop(client.take());
                if end == Kill {
                    let l3 = l.clone();
                    let g = spawn(move || l3.accept().map(|_| 1));
                    park_on(&g, "second unix accept", is_io("accept"));
                    let c = UnixStream::connect(&path).unwrap();
                    assert_eq!(bounded(|| g.join()).unwrap().unwrap(), 1);
                    drop(c);
                }
                drop(l);
                std::fs::remove_file(&path).unwrap();
                base.check(&format!("unix accept/{end:?}"));
            }
        },
    );
}

// Thousands of kills of a reader parked with a socket read timeout armed
// (on one long-lived socket and on fresh ones): descriptors and hub timers
// do not grow.
#[test]
fn thousands_of_kills_while_parked_on_sockets_do_not_grow_fds_or_timers() {
    in_child(
        "probes14::thousands_of_kills_while_parked_on_sockets_do_not_grow_fds_or_timers",
        "thousands",
        || {
            quiet();
            let (a, b) = tcp_pair();
            a.set_read_timeout(Some(LONG)).unwrap();
            let a = Rc::new(a);
            let base = Base::take(true);
            for i in 0..3000 {
                let a2 = a.clone();
                let g = spawn(move || read_one(&*a2));
                yield_now();
                assert!(!g.is_dead(), "round {i}: reader not parked");
                g.kill();
                assert!(g.join().unwrap_err().is_killed());
            }
            base.check("3000 kills on one socket");
            // the socket still works
            let a2 = a.clone();
            let g = spawn(move || read_one(&*a2));
            yield_now();
            (&b).write_all(b"x").unwrap();
            assert_eq!(bounded(|| g.join()).unwrap().unwrap(), 1);
            for i in 0..1000 {
                let (c, d) = tcp_pair();
                c.set_read_timeout(Some(LONG)).unwrap();
                let g = spawn(move || read_one(&c));
                yield_now();
                assert!(!g.is_dead(), "round {i}: reader not parked");
                g.kill();
                assert!(g.join().unwrap_err().is_killed());
                drop(d);
            }
            base.check("1000 kills on fresh sockets");
        },
    );
}

// Greenlets killed before they ever ran drop what they own (sockets
// included) exactly once and give back their reserved stacks.
#[test]
fn greenlets_killed_before_they_ran_drop_their_sockets() {
    in_child(
        "probes14::greenlets_killed_before_they_ran_drop_their_sockets",
        "unstarted",
        || {
            let base = Base::take(true);
            let drops = Rc::new(Cell::new(0));
            let mut gs = Vec::new();
            for _ in 0..50 {
                let (a, b) = tcp_pair();
                let f = DropFlag(drops.clone());
                let ran = Rc::new(Cell::new(false));
                let r2 = ran.clone();
                let g = spawn(move || {
                    r2.set(true);
                    let _f = f;
                    read_one(&a)
                });
                gs.push((g, ran, b));
            }
            for (g, ran, _) in &gs {
                assert!(!g.is_started());
                g.kill();
                assert!(!ran.get(), "killed before it ran, yet it ran");
            }
            assert_eq!(drops.get(), 50);
            for (g, _, b) in gs {
                assert!(g.join().unwrap_err().is_killed());
                drop(b);
            }
            base.check("killed before running");
            // kill_nowait too
            let (a, b) = tcp_pair();
            let (d2, f) = flag();
            let g = spawn(move || {
                let _f = f;
                read_one(&a)
            });
            g.kill_nowait();
            assert!(g.join().unwrap_err().is_killed());
            assert_eq!(d2.get(), 1);
            drop(b);
            base.check("kill_nowait before running");
        },
    );
}

// A greenlet parked reading a clone whose original was dropped: it is not
// woken (std semantics), it still gets the data, and once both are gone
// the descriptor is closed. Killing it then closes the socket.
#[test]
fn dropping_a_socket_while_a_clone_is_parked_keeps_the_clone_working() {
    in_child(
        "probes14::dropping_a_socket_while_a_clone_is_parked_keeps_the_clone_working",
        "clone",
        || {
            quiet();
            let base = Base::take(true);
            for kill in [false, true] {
                let (a, b) = tcp_pair();
                let c = a.try_clone().unwrap();
                let g = spawn(move || read_one(&c));
                park_on(&g, "read on clone", is_io("read"));
                drop(a);
                for _ in 0..3 {
                    yield_now();
                }
                assert!(!g.is_dead(), "dropping the original woke the clone");
                if kill {
                    g.kill();
                    assert!(g.join().unwrap_err().is_killed());
                    // the socket is closed: the peer sees the end
                    let mut buf = [0u8; 8];
                    b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    assert_eq!((&b).read(&mut buf).unwrap(), 0);
                } else {
                    (&b).write_all(b"data").unwrap();
                    assert_eq!(bounded(|| g.join()).unwrap().unwrap(), 4);
                }
                drop(b);
                base.check(&format!("clone, kill={kill}"));
            }
            // the same with a listener clone
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let l2 = l.try_clone().unwrap();
            let g = spawn(move || l2.accept().map(|(_, p)| p));
            park_on(&g, "accept on clone", is_io("accept"));
            drop(l);
            let c = TcpStream::connect(addr).unwrap();
            assert_eq!(
                bounded(|| g.join()).unwrap().unwrap(),
                c.local_addr().unwrap()
            );
            drop(c);
            base.check("listener clone");
        },
    );
}

// ================================================================ thread pool

/// Counts drops across threads.
struct Drops(Arc<AtomicUsize>);

impl Drop for Drops {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

// A caller of spawn_blocking killed (or timed out) while its job runs (it
// has started): the job finishes on its thread and its result (here an open file) is dropped
// there, exactly once; the caller's own destructors run once.
#[test]
fn spawn_blocking_caller_killed_or_timed_out_drops_the_result_once() {
    in_child(
        "probes14::spawn_blocking_caller_killed_or_timed_out_drops_the_result_once",
        "blocking",
        || {
            quiet();
            // warm the pool up: its threads start lazily
            sylvan::spawn_blocking(|| ());
            let base = Base::take(true);
            for end in [Kill, Timeout, Done] {
                let results = Arc::new(AtomicUsize::new(0));
                let started = Arc::new(AtomicUsize::new(0));
                let (r2, s2) = (results.clone(), started.clone());
                let (drops, f) = flag();
                let g = spawn(move || {
                    let _f = f;
                    let job = move || {
                        s2.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(30 * MS);
                        (std::fs::File::open("/proc/self/status").unwrap(), Drops(r2))
                    };
                    if end == Timeout {
                        with_timeout(SHORT, || sylvan::spawn_blocking(job)).map(|_| ())
                    } else {
                        sylvan::spawn_blocking(job);
                        Ok(())
                    }
                });
                park_on(&g, "spawn_blocking", |w| matches!(w, WaitKind::ThreadPool));
                // A job not started when its caller stops waiting is not
                // run at all: wait for this one to start, without letting
                // the hub run (so the caller's timeout, due or not, fires
                // only once the job runs).
                let t = std::time::Instant::now();
                while started.load(Ordering::SeqCst) == 0 {
                    assert!(
                        t.elapsed() < Duration::from_secs(5),
                        "the job never started"
                    );
                    std::thread::sleep(Duration::from_millis(1));
                }
                if end == Kill {
                    g.kill();
                }
                let out = bounded(|| g.join());
                assert_eq!(drops.get(), 1, "{end:?}");
                match end {
                    Kill => assert!(out.unwrap_err().is_killed()),
                    Timeout => assert!(out.unwrap().is_err()),
                    _ => out.unwrap().unwrap(),
                }
                yield_until("the job's result dropped", || {
                    results.load(Ordering::SeqCst) > 0
                });
                sleep(5 * MS);
                assert_eq!(results.load(Ordering::SeqCst), 1, "{end:?}");
                assert_eq!(started.load(Ordering::SeqCst), 1, "{end:?}");
                assert_eq!(stats().thread_pool_queue, 0);
                base.check(&format!("spawn_blocking/{end:?}"));
            }
        },
    );
}

// ================================================================ sync

/// Parks a greenlet on `wait` (holding a drop flag), ends it by `end`
/// (Kill, or Timeout: `with_timeout(SHORT)` around the wait), checks the
/// flag and the outcome, and that no timer, greenlet or stack is left.
fn sync_case(what: &str, end: End, wait: impl FnOnce() + 'static) {
    let base = Base::take(false);
    let (drops, f) = flag();
    let g = spawn(move || {
        let _f = f;
        if end == Timeout {
            with_timeout(SHORT, wait).is_err()
        } else {
            wait();
            false
        }
    });
    park_on(&g, what, |w| {
        !matches!(w, WaitKind::Nothing | WaitKind::Yield)
    });
    if end == Kill {
        g.kill();
        assert!(g.join().unwrap_err().is_killed(), "{what}");
    } else {
        assert!(
            bounded(|| g.join()).unwrap(),
            "{what}: the timeout did not fire"
        );
    }
    assert_eq!(drops.get(), 1, "{what}/{end:?}: destructor runs");
    base.check(&format!("{what}/{end:?}"));
}

#[test]
fn sync_waits_killed_or_timed_out_leave_no_waiter_and_serve_the_next() {
    bounded(|| {
        quiet();
        for end in [Kill, Timeout] {
            // Event
            let ev = Rc::new(Event::new());
            let e = ev.clone();
            sync_case("event wait", end, move || {
                e.wait();
            });
            assert_eq!(ev.waiters(), 0);
            let e = ev.clone();
            let g = spawn(move || e.wait());
            park_on(&g, "next event waiter", is_sync);
            ev.set();
            assert!(g.join().unwrap());

            // AsyncResult
            let ar: Rc<AsyncResult<Vec<u8>>> = Rc::new(AsyncResult::new());
            let a = ar.clone();
            sync_case("async result get", end, move || {
                let _ = a.get();
            });
            assert_eq!(ar.waiters(), 0);
            let a = ar.clone();
            let g = spawn(move || a.get().unwrap());
            park_on(&g, "next async result getter", is_sync);
            ar.set(vec![1, 2]).unwrap();
            assert_eq!(g.join().unwrap(), [1, 2]);

            // Semaphore
            let sem = Rc::new(Semaphore::new(1));
            let held = sem.acquire();
            let s = sem.clone();
            sync_case("semaphore acquire", end, move || {
                let _g = s.acquire();
            });
            assert_eq!(sem.waiters(), 0);
            let s = sem.clone();
            let g = spawn(move || {
                let _g = s.acquire();
            });
            park_on(&g, "next semaphore waiter", is_sync);
            drop(held);
            g.join().unwrap();
            assert_eq!(sem.available(), 1);

            // Mutex
            let m = Rc::new(Mutex::new(0u32));
            let held = m.lock();
            let m2 = m.clone();
            sync_case("mutex lock", end, move || {
                *m2.lock() += 1;
            });
            assert_eq!(m.waiters(), 0);
            let m2 = m.clone();
            let g = spawn(move || *m2.lock() += 10);
            park_on(&g, "next mutex waiter", is_sync);
            drop(held);
            g.join().unwrap();
            assert_eq!(*m.lock(), 10);
            assert!(!m.is_locked());

            // Queue get and put
            let q: Rc<Queue<DropFlag>> = Rc::new(Queue::bounded(1));
            let q2 = q.clone();
            sync_case("queue get", end, move || {
                let _ = q2.get();
            });
            assert_eq!(q.getters(), 0);
            let (item_drops, item) = flag();
            q.put(item).ok().unwrap();
            let (d2, f2) = flag();
            let q2 = q.clone();
            sync_case("queue put on a full queue", end, move || {
                let _ = q2.put(f2);
            });
            assert_eq!(q.putters(), 0);
            assert_eq!(d2.get(), 1, "the killed putter's item is dropped once");
            assert_eq!(q.len(), 1);
            drop(q.get());
            assert_eq!(item_drops.get(), 1);

            // Channel get and put
            let ch: Rc<Channel<DropFlag>> = Rc::new(Channel::new());
            let c2 = ch.clone();
            sync_case("channel get", end, move || {
                let _ = c2.get();
            });
            assert_eq!(ch.getters(), 0);
            let (d3, f3) = flag();
            let c2 = ch.clone();
            sync_case("channel put", end, move || {
                let _ = c2.put(f3);
            });
            assert_eq!(ch.putters(), 0);
            assert_eq!(d3.get(), 1, "the killed putter's item is dropped once");
            assert!(ch.try_get().is_err(), "the killed putter's item stayed");
            let c2 = ch.clone();
            let (d4, f4) = flag();
            let g = spawn(move || c2.put(f4).is_ok());
            park_on(&g, "next channel putter", is_sync);
            drop(ch.get().unwrap());
            assert!(g.join().unwrap());
            assert_eq!(d4.get(), 1);

            // JoinableQueue join
            let jq: Rc<JoinableQueue<u32>> = Rc::new(JoinableQueue::unbounded());
            jq.put(1).unwrap();
            let j2 = jq.clone();
            sync_case("joinable queue join", end, move || j2.join());
            let j2 = jq.clone();
            let g = spawn(move || j2.join());
            park_on(&g, "next joiner", is_sync);
            assert_eq!(jq.get(), Some(1));
            jq.task_done();
            g.join().unwrap();
        }
    });
}

// A waiter handed a permit, the lock or an item, then killed before it
// ran, passes it on: nothing is lost, nothing is left.
#[test]
fn waiters_killed_after_being_handed_something_pass_it_on() {
    bounded(|| {
        quiet();
        let base = Base::take(false);
        // Semaphore
        let sem = Rc::new(Semaphore::new(1));
        let held = sem.acquire();
        let (s1, s2) = (sem.clone(), sem.clone());
        let first = spawn(move || {
            let _g = s1.acquire();
        });
        let second = spawn(move || {
            let _g = s2.acquire();
            7
        });
        park_on(&second, "second acquirer", is_sync);
        drop(held); // handed to `first`
        first.kill();
        assert_eq!(second.join().unwrap(), 7);
        assert_eq!(sem.available(), 1);
        assert_eq!(sem.waiters(), 0);

        // Mutex
        let m = Rc::new(Mutex::new(Vec::new()));
        let held = m.lock();
        let (m1, m2) = (m.clone(), m.clone());
        let first = spawn(move || m1.lock().push(1));
        let second = spawn(move || m2.lock().push(2));
        park_on(&second, "second locker", is_sync);
        drop(held);
        first.kill();
        second.join().unwrap();
        assert_eq!(*m.lock(), [2]);
        assert!(!m.is_locked());

        // Queue
        let q: Rc<Queue<DropFlag>> = Rc::new(Queue::unbounded());
        let (q1, q2) = (q.clone(), q.clone());
        let first = spawn(move || q1.get().map(|_| 1));
        let second = spawn(move || q2.get().map(|_| 2));
        park_on(&second, "second getter", is_sync);
        let (d, f) = flag();
        q.put(f).ok().unwrap();
        first.kill();
        assert_eq!(second.join().unwrap(), Some(2));
        assert_eq!(d.get(), 1);
        assert!(q.is_empty());

        // Channel: a putter waiting, the getter it woke killed
        let ch: Rc<Channel<DropFlag>> = Rc::new(Channel::new());
        let (c1, c2) = (ch.clone(), ch.clone());
        let first = spawn(move || c1.get().map(|_| 1));
        park_on(&first, "channel getter", is_sync);
        let (d, f) = flag();
        let putter = spawn(move || c2.put(f).is_ok());
        yield_now();
        first.kill();
        assert_eq!(d.get(), 0, "the item went with the killed getter");
        drop(ch.get().unwrap());
        assert_eq!(d.get(), 1);
        assert!(bounded(|| putter.join()).unwrap());

        // Event set then waiter killed: the next wait still sees it set
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let w = spawn(move || e.wait());
        park_on(&w, "event waiter", is_sync);
        ev.set();
        w.kill();
        assert!(ev.wait());
        base.check("handed then killed");
    });
}

// ================================================================ join, sleep, wait

#[test]
fn join_sleep_and_wait_ended_by_kill_or_timeout_leave_nothing() {
    bounded(|| {
        quiet();
        for end in [Kill, Timeout] {
            // join
            let target = Rc::new(spawn(|| sleep(LONG)));
            park_on(&target, "target sleeps", |w| matches!(w, WaitKind::Sleep));
            let t2 = target.clone();
            sync_case("join", end, move || {
                let _ = t2.wait(None);
            });
            let t2 = target.clone();
            let g = spawn(move || t2.wait(None));
            park_on(&g, "next joiner", |w| matches!(w, WaitKind::Join(_)));
            target.kill();
            assert!(g.join().unwrap());
            // sleep
            sync_case("sleep", end, || sleep(LONG));
            // wait / iwait on an event and a greenlet
            let ev = Rc::new(Event::new());
            let other = Rc::new(spawn(|| sleep(LONG)));
            park_on(&other, "other sleeps", |w| matches!(w, WaitKind::Sleep));
            let (e2, o2) = (ev.clone(), other.clone());
            sync_case("wait", end, move || {
                sylvan::wait(&[&*e2, &*o2], None, None);
            });
            let (e2, o2) = (ev.clone(), other.clone());
            sync_case("iwait", end, move || {
                for _ in sylvan::iwait(&[&*e2, &*o2], Some(LONG)) {}
            });
            assert_eq!(ev.waiters(), 0);
            // the next wait is woken by both
            let (e2, o2) = (ev.clone(), other.clone());
            let g = spawn(move || sylvan::wait(&[&*e2, &*o2], None, None));
            park_on(&g, "next wait", |w| {
                !matches!(w, WaitKind::Nothing | WaitKind::Yield)
            });
            ev.set();
            other.kill();
            assert_eq!(g.join().unwrap().len(), 2);
        }
    });
}

// ================================================================ pool

// A greenlet parked in Pool::spawn on a full pool, then killed: the task it
// was handing over never runs, is dropped once, and takes no slot.
#[test]
fn pool_spawn_parked_on_a_full_pool_killed_leaks_no_slot() {
    bounded(|| {
        quiet();
        for end in [Kill, Timeout] {
            let base = Base::take(false);
            let pool = Rc::new(Pool::new(1));
            let busy = pool.spawn(|| sleep(LONG));
            park_on(&busy, "busy sleeps", |w| matches!(w, WaitKind::Sleep));
            let ran = Rc::new(Cell::new(false));
            let (task_drops, tf) = flag();
            let (p2, r2) = (pool.clone(), ran.clone());
            sync_case("pool spawn on a full pool", end, move || {
                let _g = p2.spawn(move || {
                    let _tf = tf;
                    r2.set(true);
                });
            });
            assert!(!ran.get(), "the task of a killed spawner ran");
            assert_eq!(task_drops.get(), 1, "the task is dropped once");
            assert_eq!(pool.len(), 1);
            busy.kill();
            yield_until("pool empty", || pool.is_empty());
            assert_eq!(pool.free_count(), 1);
            let g = pool.spawn(|| 5);
            assert_eq!(g.join().unwrap(), 5);
            drop(pool);
            base.check(&format!("pool/{end:?}"));
        }
    });
}

// ================================================================ servers

// StreamServer::stop kills handlers parked on reads and on a full write
// buffer: their destructors run once, the accepted sockets and the listener
// are closed, and nothing stays on the hub.
#[test]
fn stream_server_stop_killing_parked_handlers_leaks_nothing() {
    in_child(
        "probes14::stream_server_stop_killing_parked_handlers_leaks_nothing",
        "server",
        || {
            quiet();
            let base = Base::take(true);
            let drops = Rc::new(Cell::new(0));
            let d2 = drops.clone();
            let server = StreamServer::bind("127.0.0.1:0", move |conn: TcpStream, _| {
                let _f = DropFlag(d2.clone());
                let mut first = [0u8; 1];
                if (&conn).read_exact(&mut first).is_err() {
                    return;
                }
                if first[0] == b'w' {
                    let _ = write_lots(&conn, BIG);
                } else {
                    let _ = read_one(&conn);
                }
            })
            .unwrap()
            .start()
            .unwrap();
            let addr = server.local_addr().unwrap();
            let mut clients = Vec::new();
            for i in 0..6 {
                let c = TcpStream::connect(addr).unwrap();
                if i % 3 == 1 {
                    (&c).write_all(b"w").unwrap();
                } else if i % 3 == 2 {
                    (&c).write_all(b"r").unwrap();
                }
                clients.push(c);
            }
            yield_until("six handlers parked", || {
                server.handlers() == 6
                    && sylvan::dump()
                        .greenlets
                        .iter()
                        .filter(|g| matches!(g.wait, WaitKind::Io { op: "write", .. }))
                        .count()
                        == 2
            });
            server.stop(Some(SHORT));
            assert_eq!(server.handlers(), 0);
            assert_eq!(drops.get(), 6, "every handler's destructors ran once");
            // every client sees its connection closed
            for c in &clients {
                c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let n = drain(c, usize::MAX);
                let _ = n;
            }
            drop(clients);
            drop(server);
            base.check("stream server stop");
            assert_eq!(drops.get(), 6);
        },
    );
}

// ================================================================ ureq

/// A listener that accepts connections (kept in `conns`) and never answers.
fn silent_server() -> (
    SocketAddr,
    Greenlet<()>,
    Rc<std::cell::RefCell<Vec<TcpStream>>>,
) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let conns = Rc::new(std::cell::RefCell::new(Vec::new()));
    let c2 = conns.clone();
    let g = spawn(move || {
        while let Ok((s, _)) = l.accept() {
            c2.borrow_mut().push(s);
        }
    });
    (addr, g, conns)
}

// ureq requests to a server that never answers, killed mid-request, cut by
// with_timeout, or ended by ureq's own timeout: no descriptor, timer or
// greenlet stays behind, and the agent still works afterwards.
#[test]
fn ureq_requests_killed_mid_request_leak_nothing() {
    in_child(
        "probes14::ureq_requests_killed_mid_request_leak_nothing",
        "ureq",
        || {
            quiet();
            let base = Base::take(true);
            {
                let (addr, acceptor, conns) = silent_server();
                let agent = sylvan::ureq::agent(
                    ureq::Agent::config_builder()
                        .timeout_global(Some(Duration::from_millis(30)))
                        .build(),
                );
                let url = format!("http://{addr}/x");
                for end in [Kill, Timeout, SockTimeout] {
                    for _ in 0..10 {
                        let (a2, u2) = (agent.clone(), url.clone());
                        let (drops, f) = flag();
                        let g = spawn(move || {
                            let _f = f;
                            let call = move || {
                                if end == SockTimeout {
                                    a2.get(&u2).call().map(|_| ())
                                } else {
                                    a2.get(&u2)
                                        .config()
                                        .timeout_global(None)
                                        .build()
                                        .call()
                                        .map(|_| ())
                                }
                            };
                            if end == Timeout {
                                with_timeout(SHORT, call).is_err()
                            } else {
                                let r = call();
                                matches!(r, Err(ureq::Error::Timeout(_)))
                            }
                        });
                        park_on(&g, "ureq read", is_io("read"));
                        if end == Kill {
                            g.kill();
                            assert!(g.join().unwrap_err().is_killed());
                        } else {
                            assert!(bounded(|| g.join()).unwrap(), "{end:?}: not a timeout");
                        }
                        assert_eq!(drops.get(), 1);
                    }
                }
                acceptor.kill();
                conns.borrow_mut().clear();
                // the agent still works against a server that answers
                let answering = StreamServer::bind("127.0.0.1:0", |conn: TcpStream, _| {
                    let mut buf = [0u8; 4096];
                    let _ = (&conn).read(&mut buf);
                    let _ = (&conn).write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    );
                    let _ = conn.shutdown(Shutdown::Write);
                })
                .unwrap()
                .start()
                .unwrap();
                let u = format!("http://{}/", answering.local_addr().unwrap());
                let body = agent
                    .get(&u)
                    .call()
                    .unwrap()
                    .body_mut()
                    .read_to_string()
                    .unwrap();
                assert_eq!(body, "ok");
                answering.stop(Some(SHORT));
                drop(agent);
            }
            base.check("ureq");
        },
    );
}

// ================================================================ own timeouts

// Waits with their own (long) timeout, killed while parked: the timer each
// armed is cancelled, nothing is left on the hub, and the primitive has no
// waiter left.
#[test]
fn timed_waits_killed_while_parked_leave_no_timer() {
    bounded(|| {
        quiet();
        let ev = Rc::new(Event::new());
        let ar: Rc<AsyncResult<u8>> = Rc::new(AsyncResult::new());
        let sem = Rc::new(Semaphore::new(0));
        let m = Rc::new(Mutex::new(()));
        let held = m.lock();
        let q: Rc<Queue<u8>> = Rc::new(Queue::bounded(1));
        let full: Rc<Queue<u8>> = Rc::new(Queue::bounded(1));
        full.put(1).unwrap();
        let ch: Rc<Channel<u8>> = Rc::new(Channel::new());
        let jq: Rc<JoinableQueue<u8>> = Rc::new(JoinableQueue::unbounded());
        jq.put(1).unwrap();
        let sleeper = Rc::new(spawn(|| sleep(LONG)));
        park_on(&sleeper, "sleeper", |w| matches!(w, WaitKind::Sleep));
        let pool = Rc::new(Pool::new(1));
        let busy = pool.spawn(|| sleep(LONG));
        park_on(&busy, "busy", |w| matches!(w, WaitKind::Sleep));
        let (tx, rx) = sylvan::mpsc::channel::<u8>();
        let rx = Rc::new(rx);
        let cases: Vec<Case> = vec![
            ("event wait_timeout", {
                let e = ev.clone();
                Box::new(move || {
                    e.wait_timeout(LONG);
                })
            }),
            ("async result get_timeout", {
                let a = ar.clone();
                Box::new(move || {
                    let _ = a.get_timeout(LONG);
                })
            }),
            ("semaphore acquire_timeout", {
                let s = sem.clone();
                Box::new(move || {
                    let _ = s.acquire_timeout(LONG);
                })
            }),
            ("mutex lock_timeout", {
                let m = m.clone();
                Box::new(move || {
                    let _ = m.lock_timeout(LONG);
                })
            }),
            ("queue get_timeout", {
                let q = q.clone();
                Box::new(move || {
                    let _ = q.get_timeout(LONG);
                })
            }),
            ("queue put_timeout", {
                let q = full.clone();
                Box::new(move || {
                    let _ = q.put_timeout(2, LONG);
                })
            }),
            ("channel get_timeout", {
                let c = ch.clone();
                Box::new(move || {
                    let _ = c.get_timeout(LONG);
                })
            }),
            ("channel put_timeout", {
                let c = ch.clone();
                Box::new(move || {
                    let _ = c.put_timeout(3, LONG);
                })
            }),
            ("joinable queue join_timeout", {
                let j = jq.clone();
                Box::new(move || {
                    j.join_timeout(LONG);
                })
            }),
            ("greenlet wait(Some)", {
                let g = sleeper.clone();
                Box::new(move || {
                    g.wait(Some(LONG));
                })
            }),
            ("iwait with timeout", {
                let (e, g) = (ev.clone(), sleeper.clone());
                Box::new(move || for _ in sylvan::iwait(&[&*e, &*g], Some(LONG)) {})
            }),
            (
                "sleep_until",
                Box::new(|| sylvan::sleep_until(std::time::Instant::now() + LONG)),
            ),
            ("pool join_timeout", {
                let p = pool.clone();
                Box::new(move || {
                    p.join_timeout(LONG);
                })
            }),
            ("pool wait_available", {
                let p = pool.clone();
                Box::new(move || {
                    p.wait_available(Some(LONG));
                })
            }),
            ("mpsc recv_timeout", {
                let r = rx.clone();
                Box::new(move || {
                    let _ = r.recv_timeout(LONG);
                })
            }),
            (
                "Timeout guard around a sleep",
                Box::new(|| {
                    let _t = sylvan::Timeout::start(LONG);
                    sleep(2 * LONG);
                }),
            ),
            (
                "nested with_timeout around an event wait",
                Box::new(|| {
                    let e = Event::new();
                    let _ = with_timeout(LONG, || with_timeout(2 * LONG, || e.wait()));
                }),
            ),
        ];
        for (what, wait) in cases {
            sync_case(what, Kill, wait);
        }
        assert_eq!(ev.waiters(), 0);
        assert_eq!(ar.waiters(), 0);
        assert_eq!(sem.waiters(), 0);
        assert_eq!(m.waiters(), 0);
        assert_eq!((q.getters(), full.putters()), (0, 0));
        assert_eq!((ch.getters(), ch.putters()), (0, 0));
        assert!(
            ch.try_get().is_err(),
            "a killed channel putter left its item"
        );
        assert_eq!(full.len(), 1);
        // the mpsc receiver still gets what is sent after its waiter died
        tx.send(9).unwrap();
        assert_eq!(rx.try_recv().unwrap(), 9);
        drop(held);
        sleeper.kill();
        pool.kill();
        drop(busy);
    });
}

// A greenlet spawned with spawn_later and killed before its delay passed:
// its closure is dropped once, it never runs, and its timer is cancelled.
#[test]
fn spawn_later_killed_before_it_starts_leaves_no_timer() {
    bounded(|| {
        let base = Base::take(false);
        for nowait in [false, true] {
            let (drops, f) = flag();
            let ran = Rc::new(Cell::new(false));
            let r2 = ran.clone();
            let g = sylvan::spawn_later(LONG, move || {
                let _f = f;
                r2.set(true);
            });
            yield_now();
            if nowait {
                g.kill_nowait();
            } else {
                g.kill();
            }
            assert!(g.join().unwrap_err().is_killed());
            assert!(!ran.get());
            assert_eq!(drops.get(), 1);
            base.check(&format!("spawn_later killed (nowait={nowait})"));
        }
    });
}

// ================================================================ more sockets

// A Unix datagram recv and an mpsc recv killed while parked: the next
// receiver gets the next datagram/value, nothing stays behind.
#[test]
fn unix_datagram_and_mpsc_receivers_killed_lose_nothing() {
    in_child(
        "probes14::unix_datagram_and_mpsc_receivers_killed_lose_nothing",
        "dgram",
        || {
            quiet();
            let base = Base::take(true);
            let (a, b) = sylvan::net::UnixDatagram::pair().unwrap();
            let a = Rc::new(a);
            for end in [Kill, Timeout, Done] {
                let a2 = a.clone();
                let _ = io_case(
                    end,
                    "read",
                    move || {
                        let mut buf = [0u8; 16];
                        a2.recv(&mut buf)
                    },
                    || {
                        b.send(b"one").unwrap();
                    },
                    || {},
                );
            }
            b.send(b"two").unwrap();
            let mut buf = [0u8; 16];
            let n = a.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"two");
            drop((a, b));
            base.check("unix datagram");

            // mpsc, the sender on another thread
            let (tx, rx) = sylvan::mpsc::channel::<Vec<u8>>();
            let rx = Rc::new(rx);
            let r2 = rx.clone();
            let (drops, f) = flag();
            let g = spawn(move || {
                let _f = f;
                r2.recv()
            });
            park_on(&g, "mpsc recv", |w| {
                !matches!(w, WaitKind::Nothing | WaitKind::Yield)
            });
            g.kill();
            assert!(g.join().unwrap_err().is_killed());
            assert_eq!(drops.get(), 1);
            let th = std::thread::spawn(move || tx.send(vec![4, 2]).unwrap());
            let r2 = rx.clone();
            let g = spawn(move || r2.recv().unwrap());
            assert_eq!(bounded(|| g.join()).unwrap(), [4, 2]);
            yield_until("sender thread done", || th.is_finished());
            th.join().unwrap();
            drop(rx);
            base.check("mpsc");
        },
    );
}

// After kills and timeouts of greenlets parked on sockets, connects, the
// thread pool and mpsc, main blocking on an event nobody will set must
// still be told "would block forever" (no wake-source count leaked), not
// hang. Run on a fresh thread with no other timer armed.
#[test]
fn kills_at_every_blocking_point_leak_no_wake_source_count() {
    let (txr, rxr) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        quiet();
        let r = std::panic::catch_unwind(|| {
            let (a, b) = tcp_pair();
            let a = Rc::new(a);
            // socket read: kill, with_timeout, socket timeout
            let a2 = a.clone();
            let g = spawn(move || read_one(&*a2));
            park_on(&g, "read", is_io("read"));
            g.kill();
            let a2 = a.clone();
            let g = spawn(move || with_timeout(SHORT, || read_one(&*a2)));
            assert!(g.join().unwrap().is_err());
            a.set_read_timeout(Some(SHORT)).unwrap();
            assert!(read_one(&*a).is_err());
            // accept
            let l = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
            let l2 = l.clone();
            let g = spawn(move || l2.accept().map(|_| ()));
            park_on(&g, "accept", is_io("accept"));
            g.kill();
            // spawn_blocking
            let g = spawn(|| sylvan::spawn_blocking(|| std::thread::sleep(5 * MS)));
            park_on(&g, "pool", |w| matches!(w, WaitKind::ThreadPool));
            g.kill();
            // mpsc
            let (tx, rx) = sylvan::mpsc::channel::<u8>();
            let g = spawn(move || rx.recv().map(|_| ()));
            park_on(&g, "mpsc", |w| {
                !matches!(w, WaitKind::Nothing | WaitKind::Yield)
            });
            g.kill();
            drop(tx);
            // a job still running on the pool may keep the hub waiting a bit
            sleep(30 * MS);
            drop((a, b, l));
            let ev = Event::new();
            let t = std::time::Instant::now();
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ev.wait()));
            (r.is_err(), t.elapsed())
        });
        let _ = txr.send(r.map_err(|p| sylvan::runtime::payload_message(&*p).to_string()));
    });
    match rxr.recv_timeout(Duration::from_secs(5)) {
        Ok(Ok((panicked, _))) => assert!(panicked, "main's wait returned?"),
        Ok(Err(msg)) => panic!("the probe thread failed: {msg}"),
        Err(_) => panic!("HANG: main waited forever instead of 'would block forever'"),
    }
}

// Threads that used sylvan (sockets parked at exit, timers armed) close
// everything when they end: the hub's own descriptors too.
#[test]
fn threads_ending_with_parked_greenlets_close_every_descriptor() {
    in_child(
        "probes14::threads_ending_with_parked_greenlets_close_every_descriptor",
        "threads",
        || {
            // the first thread pays for lazily created process-wide state
            let work = || {
                std::thread::spawn(|| {
                    let (a, b) = tcp_pair();
                    a.set_read_timeout(Some(LONG)).unwrap();
                    let l = TcpListener::bind("127.0.0.1:0").unwrap();
                    let g1 = spawn(move || read_one(&a));
                    let g2 = spawn(move || l.accept().map(|_| ()));
                    let g3 = spawn(|| sleep(LONG));
                    yield_now();
                    assert!(!g1.is_dead() && !g2.is_dead() && !g3.is_dead());
                    drop(b);
                    // exit with the three still parked (the read woken by
                    // EOF or not): teardown kills them
                    std::mem::forget((g1, g2, g3));
                })
                .join()
                .unwrap();
            };
            work();
            let n = fds();
            for _ in 0..20 {
                work();
            }
            assert_eq!(fds(), n, "descriptors leaked by threads: {}", fd_list());
        },
    );
}

// ================================================================ pools, outcomes

// Pool::map whose caller is killed (or times out) kills the tasks it
// started; every task's destructors and every input item run/drop once;
// the pool ends empty and usable. imap dropped early does the same.
#[test]
fn pool_map_caller_killed_and_imap_dropped_kill_their_tasks_once() {
    bounded(|| {
        quiet();
        let base = Base::take(false);
        for end in [Kill, Timeout] {
            let pool = Rc::new(Pool::new(2));
            let item_drops = Rc::new(Cell::new(0));
            let task_drops = Rc::new(Cell::new(0));
            let (p2, id2, td2) = (pool.clone(), item_drops.clone(), task_drops.clone());
            let (drops, f) = flag();
            let g = spawn(move || {
                let _f = f;
                let items: Vec<DropFlag> = (0..5).map(|_| DropFlag(id2.clone())).collect();
                let body = move || {
                    p2.map(items, move |item: DropFlag| {
                        let _t = DropFlag(td2.clone());
                        let _item = item;
                        sleep(LONG);
                    })
                };
                if end == Timeout {
                    with_timeout(SHORT, body).is_err()
                } else {
                    body();
                    false
                }
            });
            park_on(&g, "map", |w| {
                !matches!(w, WaitKind::Nothing | WaitKind::Yield)
            });
            yield_until("two tasks started", || pool.len() == 2);
            if end == Kill {
                g.kill();
                assert!(g.join().unwrap_err().is_killed());
            } else {
                assert!(bounded(|| g.join()).unwrap());
            }
            assert_eq!(drops.get(), 1);
            yield_until("pool empty", || pool.is_empty());
            assert_eq!(task_drops.get(), 2, "{end:?}: started tasks unwound once");
            assert_eq!(item_drops.get(), 5, "{end:?}: every item dropped once");
            assert_eq!(pool.free_count(), 2);
            assert_eq!(pool.spawn(|| 1).join().unwrap(), 1);
            base.check(&format!("pool map/{end:?}"));
        }
        // imap dropped after the first result
        let pool = Pool::new(2);
        let item_drops = Rc::new(Cell::new(0));
        let items: Vec<(u32, DropFlag)> =
            (0..6).map(|i| (i, DropFlag(item_drops.clone()))).collect();
        {
            let mut it = pool.imap(items, |(i, _f): (u32, DropFlag)| {
                if i > 0 {
                    sleep(LONG);
                }
                i
            });
            assert_eq!(it.next().unwrap().unwrap(), 0);
        }
        yield_until("imap tasks gone", || pool.is_empty());
        assert_eq!(item_drops.get(), 6, "imap: every item dropped once");
        base.check("imap dropped");
    });
}

// A greenlet's return value is dropped exactly once: when nobody joins
// (handle dropped before or after it died), when joined, when a
// link_value callback borrowed it, and when killed before it ran.
#[test]
fn greenlet_outcomes_are_dropped_exactly_once() {
    bounded(|| {
        quiet();
        let base = Base::take(false);
        let c = Rc::new(Cell::new(0));
        // handle dropped before death
        let c2 = c.clone();
        let g = spawn(move || {
            sleep(MS);
            DropFlag(c2)
        });
        drop(g);
        yield_until("value dropped", || c.get() == 1);
        // handle dropped after death
        let c2 = c.clone();
        let g = spawn(move || DropFlag(c2));
        yield_until("dead", || g.is_dead());
        assert_eq!(c.get(), 1);
        drop(g);
        assert_eq!(c.get(), 2);
        // joined
        let c2 = c.clone();
        let v = spawn(move || DropFlag(c2)).join().unwrap();
        assert_eq!(c.get(), 2);
        drop(v);
        assert_eq!(c.get(), 3);
        // link_value borrowing it, then joined
        let c2 = c.clone();
        let seen = Rc::new(Cell::new(0));
        let s2 = seen.clone();
        let g = spawn(move || DropFlag(c2));
        g.link_value(move |_| s2.set(s2.get() + 1));
        let v = g.join().unwrap();
        assert_eq!((seen.get(), c.get()), (1, 3));
        drop(v);
        assert_eq!(c.get(), 4);
        // link_value, handle dropped
        let c2 = c.clone();
        let g = spawn(move || DropFlag(c2));
        let s2 = seen.clone();
        g.link_value(move |_| s2.set(s2.get() + 1));
        drop(g);
        yield_until("link ran", || seen.get() == 2);
        yield_until("value dropped", || c.get() == 5);
        sleep(MS);
        assert_eq!(c.get(), 5);
        base.check("outcomes");
    });
}

// A `wait` on a Semaphore, first in line, then an `acquire`: one release
// must wake the waiter too. gevent notifies the semaphore's links in order
// while it is ready, so its `wait()`-er, which takes nothing, is woken and
// so is the acquirer. Found here: sylvan handed the permit straight to the
// acquirer and never told the watchers, so the `wait` stayed parked for
// good (a greenlet leaked on a lost wakeup). Fixed: a release wakes the
// watchers either way.
#[test]
fn semaphore_wait_first_in_line_is_woken_by_a_release_handed_to_an_acquirer() {
    bounded(|| {
        quiet();
        let sem = Rc::new(Semaphore::new(0));
        let (s1, s2) = (sem.clone(), sem.clone());
        let w = spawn(move || sylvan::wait(&[&*s1], None, None).len());
        park_on(&w, "wait on semaphore", |w| {
            !matches!(w, WaitKind::Nothing | WaitKind::Yield)
        });
        let a = spawn(move || {
            s2.acquire().forget();
            true
        });
        park_on(&a, "acquire", is_sync);
        sem.release();
        assert!(bounded(|| a.join()).unwrap(), "the acquirer got the permit");
        let woke = with_timeout(Duration::from_millis(300), || w.wait(None)).is_ok();
        let dump = sylvan::dump();
        if !woke {
            w.kill();
        }
        assert!(
            woke,
            "the wait() queued first was never woken by the release: {dump}"
        );
    });
}

// The same with the watcher killed before it runs, and a BoundedSemaphore
// whose handed permit goes with a killed waiter: the permit passes on and
// the bound holds.
#[test]
fn semaphore_permits_are_not_lost_to_waiters_that_die() {
    bounded(|| {
        quiet();
        let base = Base::take(false);
        let sem = Rc::new(Semaphore::new(0));
        let (s1, s2) = (sem.clone(), sem.clone());
        let w = spawn(move || sylvan::wait(&[&*s1], None, None).len());
        park_on(&w, "wait on semaphore", |w| {
            !matches!(w, WaitKind::Nothing | WaitKind::Yield)
        });
        let a = spawn(move || {
            s2.acquire().forget();
            true
        });
        park_on(&a, "acquire", is_sync);
        sem.release();
        w.kill();
        assert!(
            with_timeout(Duration::from_millis(500), || a.join()).is_ok_and(|r| r.unwrap()),
            "the acquirer never got the released permit"
        );
        assert_eq!(sem.available(), 0);
        assert_eq!(sem.waiters(), 0);

        let bs = Rc::new(sylvan::sync::BoundedSemaphore::new(1));
        let held = bs.acquire();
        let (b1, b2) = (bs.clone(), bs.clone());
        let first = spawn(move || {
            let _g = b1.acquire();
        });
        park_on(&first, "bounded acquire", is_sync);
        drop(held); // handed to `first`
        first.kill();
        assert_eq!(bs.available(), 1);
        assert!(bs.release().is_err(), "released past the bound");
        let g = spawn(move || {
            let _g = b2.acquire();
            1
        });
        assert_eq!(g.join().unwrap(), 1);
        assert_eq!(bs.available(), 1);
        base.check("semaphores");
    });
}

// ================================================================ server stop cut short, pooled server

// A stop cut short (its caller killed while handlers finish) leaves them
// to the next stop, which ends them; a server whose pool is full, with
// accepted connections waiting for a slot, closes every one on stop.
#[test]
fn stream_server_stop_cut_short_and_pooled_server_leak_nothing() {
    in_child(
        "probes14::stream_server_stop_cut_short_and_pooled_server_leak_nothing",
        "server2",
        || {
            quiet();
            let base = Base::take(true);
            let drops = Rc::new(Cell::new(0));
            let d2 = drops.clone();
            let server = Rc::new(
                StreamServer::bind("127.0.0.1:0", move |conn: TcpStream, _| {
                    let _f = DropFlag(d2.clone());
                    let _ = read_one(&conn);
                })
                .unwrap()
                .start()
                .unwrap(),
            );
            let addr = server.local_addr().unwrap();
            let clients: Vec<TcpStream> =
                (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
            yield_until("handlers parked", || server.handlers() == 3);
            let s2 = server.clone();
            let stopper = spawn(move || s2.stop(Some(LONG)));
            yield_until("stopper waiting", || {
                wait_of(stopper.id()).is_some_and(|w| !matches!(w, WaitKind::Nothing))
            });
            stopper.kill();
            assert!(stopper.join().unwrap_err().is_killed());
            assert_eq!(server.handlers(), 3, "handlers left to the next stop");
            server.stop(Some(SHORT));
            assert_eq!(server.handlers(), 0);
            assert_eq!(drops.get(), 3);
            drop(clients);
            drop(server);
            base.check("stop cut short");

            // pooled: one slot, three connections
            let drops = Rc::new(Cell::new(0));
            let d2 = drops.clone();
            let server = StreamServer::bind("127.0.0.1:0", move |conn: TcpStream, _| {
                let _f = DropFlag(d2.clone());
                let _ = read_one(&conn);
            })
            .unwrap()
            .with_pool(Pool::new(1))
            .start()
            .unwrap();
            let addr = server.local_addr().unwrap();
            let clients: Vec<TcpStream> =
                (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
            yield_until("a handler parked", || server.handlers() == 1);
            yield_until("the acceptor waits for a slot", || {
                sylvan::dump()
                    .greenlets
                    .iter()
                    .any(|g| matches!(g.wait, WaitKind::Sync(_)))
            });
            server.stop(Some(SHORT));
            assert_eq!(server.handlers(), 0);
            // every client sees its connection closed (or refused/reset)
            for c in &clients {
                c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut buf = [0u8; 8];
                let r = (&*c).read(&mut buf);
                assert!(
                    matches!(r, Ok(0))
                        || matches!(&r, Err(e) if e.kind() == io::ErrorKind::ConnectionReset),
                    "a client's connection stayed open after stop: {r:?}"
                );
            }
            drop(clients);
            drop(server);
            base.check("pooled server stop");
        },
    );
}

// ================================================================ ureq keep-alive

// A keep-alive connection whose request was killed while the response body
// was half read must not go back to the agent's pool: the next request
// gets its own response, and no descriptor stays behind.
#[test]
fn ureq_request_killed_mid_body_does_not_poison_the_pool() {
    in_child(
        "probes14::ureq_request_killed_mid_body_does_not_poison_the_pool",
        "ureq2",
        || {
            quiet();
            let base = Base::take(true);
            {
                let release = Rc::new(Event::new());
                let r2 = release.clone();
                let conns = Rc::new(Cell::new(0));
                let c2 = conns.clone();
                // keep-alive server: answers each request with its path; the
                // body of /slow is sent half, then the rest after `release`
                let server = StreamServer::bind("127.0.0.1:0", move |conn: TcpStream, _| {
                    c2.set(c2.get() + 1);
                    let mut reader = io::BufReader::new(&conn);
                    loop {
                        let mut line = String::new();
                        if io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let path = line.split(' ').nth(1).unwrap_or("/").to_string();
                        loop {
                            let mut h = String::new();
                            if io::BufRead::read_line(&mut reader, &mut h).unwrap_or(0) == 0 {
                                return;
                            }
                            if h == "\r\n" {
                                break;
                            }
                        }
                        let body = format!("body of {path}");
                        let head =
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                        let mut w = &conn;
                        if path == "/slow" {
                            let _ = w.write_all(head.as_bytes());
                            let _ = w.write_all(&body.as_bytes()[..4]);
                            r2.wait();
                            let _ = w.write_all(&body.as_bytes()[4..]);
                        } else if w.write_all(format!("{head}{body}").as_bytes()).is_err() {
                            return;
                        }
                    }
                })
                .unwrap()
                .start()
                .unwrap();
                let base_url = format!("http://{}", server.local_addr().unwrap());
                let agent = sylvan::ureq::agent(ureq::Agent::config_builder().build());
                let get = |path: &str| -> String {
                    agent
                        .get(format!("{base_url}{path}"))
                        .call()
                        .unwrap()
                        .body_mut()
                        .read_to_string()
                        .unwrap()
                };
                assert_eq!(get("/a"), "body of /a");
                assert_eq!(conns.get(), 1);
                let (a2, u2) = (agent.clone(), format!("{base_url}/slow"));
                let (drops, f) = flag();
                let g = spawn(move || {
                    let _f = f;
                    let mut res = a2.get(&u2).call().unwrap();
                    res.body_mut().read_to_string()
                });
                park_on(&g, "mid-body", is_io("read"));
                g.kill();
                assert!(g.join().unwrap_err().is_killed());
                assert_eq!(drops.get(), 1);
                release.set();
                for p in ["/b", "/c", "/d"] {
                    assert_eq!(get(p), format!("body of {p}"));
                }
                drop(agent);
                server.stop(Some(SHORT));
            }
            base.check("ureq mid-body kill");
        },
    );
}

// ================================================================ join on link callbacks, serve_forever, ureq connect

// A joiner killed while it waits for the target's link callbacks (which
// borrow the outcome) to finish: the outcome is still dropped exactly
// once, after the callbacks, and nothing stays on the hub.
#[test]
fn joiner_killed_while_link_callbacks_borrow_the_outcome_drops_it_once() {
    bounded(|| {
        quiet();
        let base = Base::take(false);
        let c = Rc::new(Cell::new(0));
        let c2 = c.clone();
        let target = spawn(move || DropFlag(c2));
        let cb_done = Rc::new(Cell::new(false));
        let d2 = cb_done.clone();
        target.link_value(move |_| {
            sleep(20 * MS);
            d2.set(true);
        });
        let joiner = spawn(move || target.join().map(|_| ()));
        park_on(&joiner, "joiner on link callbacks", |w| {
            matches!(w, WaitKind::LinkCallbacks(_))
        });
        joiner.kill();
        assert!(joiner.join().unwrap_err().is_killed());
        assert!(!cb_done.get());
        assert_eq!(
            c.get(),
            0,
            "the outcome dropped while a callback borrows it"
        );
        yield_until("callback done", || cb_done.get());
        yield_until("outcome dropped", || c.get() > 0);
        sleep(MS);
        assert_eq!(c.get(), 1);
        base.check("joiner killed on link callbacks");
    });
}

// The greenlet running serve_forever, killed: its handlers and the
// listener go too (nothing left open once the server is dropped).
#[test]
fn serve_forever_greenlet_killed_leaves_no_descriptor() {
    in_child(
        "probes14::serve_forever_greenlet_killed_leaves_no_descriptor",
        "serve_forever",
        || {
            quiet();
            let base = Base::take(true);
            let drops = Rc::new(Cell::new(0));
            let d2 = drops.clone();
            let server = Rc::new(
                StreamServer::bind("127.0.0.1:0", move |conn: TcpStream, _| {
                    let _f = DropFlag(d2.clone());
                    let _ = read_one(&conn);
                })
                .unwrap(),
            );
            let addr = server.local_addr().unwrap();
            let s2 = server.clone();
            let g = spawn(move || s2.serve_forever());
            let clients: Vec<TcpStream> =
                (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
            yield_until("handlers parked", || server.handlers() == 2);
            g.kill();
            let _ = g.join();
            server.stop(Some(SHORT));
            assert_eq!(server.handlers(), 0);
            assert_eq!(drops.get(), 2);
            drop(clients);
            drop(server);
            base.check("serve_forever killed");
        },
    );
}

// A ureq request parked connecting to a listener with a full backlog,
// killed or cut by ureq's connect timeout: no descriptor stays behind.
#[test]
fn ureq_request_killed_while_connecting_leaks_nothing() {
    in_child(
        "probes14::ureq_request_killed_while_connecting_leaks_nothing",
        "ureq3",
        || {
            quiet();
            let (l, addr, fill) = crate::net::full_backlog_listener();
            let base = Base::take(true);
            {
                let agent = sylvan::ureq::agent(
                    ureq::Agent::config_builder()
                        .timeout_connect(Some(Duration::from_millis(20)))
                        .build(),
                );
                let url = format!("http://{addr}/");
                for end in [Kill, SockTimeout, Timeout] {
                    for _ in 0..5 {
                        let (a2, u2) = (agent.clone(), url.clone());
                        let (drops, f) = flag();
                        let g = spawn(move || {
                            let _f = f;
                            let call = move || {
                                if end == SockTimeout {
                                    a2.get(&u2).call().map(|_| ())
                                } else {
                                    a2.get(&u2)
                                        .config()
                                        .timeout_connect(None)
                                        .build()
                                        .call()
                                        .map(|_| ())
                                }
                            };
                            if end == Timeout {
                                with_timeout(SHORT, call).is_err()
                            } else {
                                call().is_err()
                            }
                        });
                        park_on(&g, "ureq connect", is_io("connect"));
                        if end == Kill {
                            g.kill();
                            assert!(g.join().unwrap_err().is_killed());
                        } else {
                            assert!(bounded(|| g.join()).unwrap(), "{end:?}");
                        }
                        assert_eq!(drops.get(), 1);
                    }
                }
                drop(agent);
            }
            base.check("ureq connect");
            drop((l, fill));
        },
    );
}
