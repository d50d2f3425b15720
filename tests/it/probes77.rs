//! Combined-program review against gevent: realistic programs that mix
//! servers, queues, pools, timeouts, links, the thread pool and kills, each
//! written the way a gevent user moving to Rust would, beside the gevent
//! script of the same program (kept outside the repository, under
//! `gevent77/`, with the trace it printed quoted in each test's doc).
//!
//! * Same as gevent (Rust-style): chat server with broadcast, a client
//!   leaving and `stop` (c01); worker pool over a `JoinableQueue` with a
//!   kill and a panic mid-task (c02); nested timeouts around socket ops and
//!   a write on a full buffer (c03, c18); pool `map`/`imap_unordered` with
//!   failures and a kill (c04, c21); `spawn_blocking` under timeout, kill
//!   and load (c05); supervisor links (c06); one `killall` over every kind
//!   of park (c07); `iwait` while killed (c08); a reader going on after its
//!   writer's kill (c10); a full pooled server stopped (c13); a member
//!   killing its pool (c14); a child process under a timeout (c15);
//!   graceful `SIGTERM` shutdown (c16); UDP retries (c19); a `stop` cut
//!   short (c22); `shutdown` waking reader and writer (c24).
//! * Documented differences, pinned: a timed-out `map` kills its tasks
//!   (c09); a handler stopping its own server goes on (c11); a dropped
//!   `imap` kills its tasks (c12); `serve_forever` cut by a timeout kills
//!   without waiting (c17); thread exit kills a forgotten server's handlers
//!   (c23); `join` waits for link callbacks, so a collector callback
//!   blocked on main makes `join` panic "would block forever" (c25).
//! * BUG (c20), fixed: a `spawn_blocking` job queued behind busy threads
//!   whose caller was killed (or timed out) before the job started still
//!   ran; gevent never submits it, and sylvan now drops it unrun.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sylvan::net::{StreamServer, TcpListener, TcpStream};
use sylvan::pool::Pool;
use sylvan::sync::{Event, JoinableQueue, Queue, Semaphore};
use sylvan::{Greenlet, Waitable, spawn, with_timeout};

use crate::util::{Log, bounded, quiet, yield_until};

const MS: Duration = Duration::from_millis(1);

/// Pushes `name` to the log when dropped: a `finally` clause.
struct Fin(Log, &'static str);

impl Drop for Fin {
    fn drop(&mut self) {
        self.0.push(self.1);
    }
}

fn read_line(r: &mut impl BufRead) -> String {
    let mut s = String::new();
    r.read_line(&mut s).unwrap();
    s
}

type Clients = Rc<RefCell<BTreeMap<String, Rc<Queue<Vec<u8>>>>>>;

/// A chat server: a handler per client, registered in a table of
/// per-client queues, each drained to its socket by a writer greenlet; a
/// line from one client is broadcast to every queue. Client b leaves
/// without waiting for its handler to notice (its queue may still get the
/// next broadcast, whose write then fails), and the server is stopped with
/// two clients still connected. gevent (`gevent77/s1_chat.py`, with a pool
/// so that its `stop` kills handlers as sylvan's always does) printed:
///
/// ```text
/// [b'a: hi\n', b'a: hi\n', b'a: hi\n']
/// [b'c: yo\n', b'c: yo\n']
/// ['eof b', 'gone a', 'gone b', 'gone c']
/// [b'', b'']
/// ```
#[test]
fn c01_chat_broadcast_leave_and_stop() {
    bounded(|| {
        let clients = Clients::default();
        let log = Log::default();
        let (cl, lg) = (clients.clone(), log.clone());
        let server = StreamServer::bind("127.0.0.1:0", move |sock: TcpStream, _| {
            let sock = Rc::new(sock);
            let mut rd = BufReader::new(&*sock);
            let name = read_line(&mut rd).trim().to_owned();
            let q: Rc<Queue<Vec<u8>>> = Rc::new(Queue::unbounded());
            cl.borrow_mut().insert(name.clone(), q.clone());
            let writer = {
                let (q, sock) = (q.clone(), sock.clone());
                spawn(move || {
                    for msg in q.iter() {
                        if (&*sock).write_all(&msg).is_err() {
                            break;
                        }
                    }
                })
            };
            // finally: leave the table, stop the writer
            struct Gone(Clients, String, Greenlet<()>, Log);
            impl Drop for Gone {
                fn drop(&mut self) {
                    self.0.borrow_mut().remove(&self.1);
                    self.2.kill();
                    self.3.push(format!("gone {}", self.1));
                }
            }
            let _gone = Gone(cl.clone(), name.clone(), writer, lg.clone());
            for line in rd.lines() {
                let Ok(line) = line else { break };
                let targets: Vec<_> = cl.borrow().values().cloned().collect();
                for t in targets {
                    let _ = t.put(format!("{name}: {line}\n").into_bytes());
                }
            }
            lg.push(format!("eof {name}"));
        })
        .unwrap()
        .start()
        .unwrap();
        let addr = server.local_addr().unwrap();
        let mut conns: Vec<Option<TcpStream>> = Vec::new();
        for n in ["a", "b", "c"] {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            writeln!(s, "{n}").unwrap();
            conns.push(Some(s));
        }
        yield_until("three clients registered", || clients.borrow().len() == 3);
        let mut readers: Vec<Option<BufReader<TcpStream>>> = conns
            .iter()
            .map(|c| Some(BufReader::new(c.as_ref().unwrap().try_clone().unwrap())))
            .collect();
        conns[0].as_mut().unwrap().write_all(b"hi\n").unwrap();
        let got: Vec<String> = readers
            .iter_mut()
            .map(|r| read_line(r.as_mut().unwrap()))
            .collect();
        assert_eq!(got, ["a: hi\n"; 3]);
        // b leaves; c talks at once (mid-broadcast for b's queue)
        conns[1] = None;
        readers[1] = None;
        conns[2].as_mut().unwrap().write_all(b"yo\n").unwrap();
        let got = [
            read_line(readers[0].as_mut().unwrap()),
            read_line(readers[2].as_mut().unwrap()),
        ];
        assert_eq!(got, ["c: yo\n", "c: yo\n"]);
        yield_until("b unregistered", || clients.borrow().len() == 2);
        server.stop(Some(Duration::from_millis(200)));
        let mut l = log.get();
        l.sort();
        assert_eq!(l, ["eof b", "gone a", "gone b", "gone c"]);
        assert_eq!(server.handlers(), 0);
        for i in [0, 2] {
            let mut rest = Vec::new();
            readers[i]
                .as_mut()
                .unwrap()
                .read_to_end(&mut rest)
                .expect("EOF after stop");
            assert!(rest.is_empty(), "client {i} got {rest:?}");
        }
        assert!(clients.borrow().is_empty());
    })
}

/// A worker pool over a `JoinableQueue`, `task_done` in a guard (gevent's
/// `try/finally`): worker 0 is killed in the middle of its task, worker 1
/// panics on its item; `join` still returns, the third worker doing the
/// rest. Then the plain loop (`task_done` after the work, no guard): a
/// kill mid-task leaves one item unfinished and `join` times out. gevent
/// (`gevent77/s2_jq.py`) printed:
///
/// ```text
/// join True 0
/// ['w2 b', 'w2 c', 'w2 d', 'w2 e']
/// join2 False 1
/// ```
#[test]
fn c02_joinable_queue_worker_killed_and_panicking() {
    quiet();
    bounded(|| {
        struct Done<'a>(&'a JoinableQueue<&'static str>);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.task_done();
            }
        }
        let q = Rc::new(JoinableQueue::unbounded());
        let log = Log::default();
        let busy = Rc::new(Cell::new(0));
        let ws: Vec<Greenlet<()>> = (0..3)
            .map(|i| {
                let (q, log, busy) = (q.clone(), log.clone(), busy.clone());
                spawn(move || {
                    for job in q.iter() {
                        let _done = Done(&q);
                        busy.set(busy.get() + 1);
                        if job == "boom" {
                            panic!("boom");
                        }
                        sylvan::sleep(10 * MS);
                        log.push(format!("w{i} {job}"));
                    }
                })
            })
            .collect();
        for j in ["a", "boom", "b", "c", "d", "e"] {
            q.put(j).unwrap();
        }
        yield_until("three jobs taken", || busy.get() == 3);
        ws[0].kill();
        assert!(q.join_timeout(Duration::from_secs(1)));
        assert_eq!(q.unfinished(), 0);
        assert_eq!(log.get(), ["w2 b", "w2 c", "w2 d", "w2 e"]);
        q.close();
        let r: Vec<_> = ws.into_iter().map(|g| g.join()).collect();
        assert!(r[0].as_ref().unwrap_err().is_killed());
        assert!(matches!(&r[1], Err(sylvan::Error::Panicked(p)) if p.message() == "boom"));
        assert!(r[2].is_ok());

        // the plain loop
        let q2: Rc<JoinableQueue<u32>> = Rc::new(JoinableQueue::unbounded());
        let busy = Rc::new(Cell::new(0));
        let ws: Vec<Greenlet<()>> = (0..2)
            .map(|_| {
                let (q2, busy) = (q2.clone(), busy.clone());
                spawn(move || {
                    for _job in q2.iter() {
                        busy.set(busy.get() + 1);
                        sylvan::sleep(10 * MS);
                        q2.task_done();
                    }
                })
            })
            .collect();
        for j in 0..4 {
            q2.put(j).unwrap();
        }
        yield_until("two jobs taken", || busy.get() == 2);
        ws[0].kill();
        assert!(!q2.join_timeout(200 * MS));
        assert_eq!(q2.unfinished(), 1);
        q2.close();
        let mut ws = ws;
        assert!(ws.pop().unwrap().join().is_ok());
    })
}

/// Timeouts around a sequence of socket operations: an outer budget over
/// connect, write, read; an inner shorter one around a read that fires
/// first and is caught while the outer stays armed; an outer short one
/// that fires while a longer inner one is armed (the outer catches it);
/// and one that fires while the writer is parked on a full send buffer
/// (the peer not reading), after which every byte that `write` said was
/// sent reaches the peer, then EOF. gevent (`gevent77/s3_timeout_sock.py`):
///
/// ```text
/// inner timeout
/// read b'pong'
/// caught by outer
/// write timeout, sent>0 True
/// peer got all True
/// ```
#[test]
fn c03_nested_timeouts_around_socket_ops() {
    bounded(|| {
        let lst = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = lst.local_addr().unwrap();
        let peer: Rc<RefCell<Option<TcpStream>>> = Rc::default();
        let p = peer.clone();
        let acc = spawn(move || *p.borrow_mut() = Some(lst.accept().unwrap().0));
        let mut buf = [0u8; 10];
        let c = with_timeout(Duration::from_secs(1), || {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(b"ping").unwrap();
            acc.join().unwrap();
            let inner = with_timeout(30 * MS, || c.read(&mut buf));
            assert!(inner.is_err(), "inner timeout: {inner:?}");
            let mut pb = peer.borrow_mut();
            pb.as_mut().unwrap().write_all(b"pong").unwrap();
            drop(pb);
            let n = c.read(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"pong");
            c
        })
        .expect("the outer budget was not spent");
        // an outer 30 ms around an inner 1 s: the outer catches it
        let r = with_timeout(30 * MS, || {
            with_timeout(Duration::from_secs(1), || (&c).read(&mut buf)).is_err()
        });
        assert!(r.is_err(), "caught by the inner one: {r:?}");
        // a timeout while parked in write on a full buffer
        let small: libc::c_int = 4096;
        // SAFETY: setsockopt on a live socket with an int option.
        let rc = unsafe {
            libc::setsockopt(
                c.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                (&small as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
        let sent = Cell::new(0usize);
        let chunk = vec![b'x'; 65536];
        let r = with_timeout(50 * MS, || {
            for _ in 0..100_000 {
                sent.set(sent.get() + (&c).write(&chunk).unwrap());
            }
        });
        assert!(r.is_err(), "the buffer never filled");
        assert!(sent.get() > 0);
        c.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        peer.borrow_mut()
            .as_mut()
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got.len() - 4, sent.get());
        assert_eq!(&got[..4], b"ping");
    })
}

/// `Pool::map` with a failing task, then `imap_unordered` with slow tasks
/// while another greenlet kills the pool once four results were seen.
/// gevent (`gevent77/s4_pool.py`) printed:
///
/// ```text
/// map raised bad 1          (sylvan: Err(Panicked) in its slot, documented)
/// pool after map 0
/// imap_unordered [0, 1, 3, 4, 'GreenletExit', 'GreenletExit'] 0
/// ```
#[test]
fn c04_pool_map_failures_and_kill_during_imap_unordered() {
    quiet();
    bounded(|| {
        let p = Rc::new(Pool::new(3));
        let r = p.map([0u32, 1, 3], |i| {
            if i == 1 {
                panic!("bad {i}");
            }
            sylvan::sleep(10 * MS);
            i
        });
        assert_eq!(r[0].as_ref().ok(), Some(&0));
        assert!(matches!(&r[1], Err(sylvan::Error::Panicked(p)) if p.message() == "bad 1"));
        assert_eq!(r[2].as_ref().ok(), Some(&3));
        assert_eq!(p.len(), 0);

        let four = Rc::new(Event::new());
        let killer = {
            let (p, four) = (p.clone(), four.clone());
            spawn(move || {
                four.wait();
                p.kill();
            })
        };
        let mut res = Vec::new();
        for r in p.imap_unordered(0u32..6, |i| {
            sylvan::sleep(if i == 2 || i == 5 {
                Duration::from_secs(10)
            } else {
                10 * MS
            });
            i
        }) {
            res.push(match r {
                Ok(i) => i.to_string(),
                Err(e) if e.is_killed() => "Killed".into(),
                Err(e) => format!("{e:?}"),
            });
            if res.len() == 4 {
                four.set();
            }
        }
        assert_eq!(res, ["0", "1", "3", "4", "Killed", "Killed"]);
        assert_eq!(p.len(), 0);
        killer.join().unwrap();
    })
}

/// `spawn_blocking` under a timeout and a kill (each returns at once, the
/// job going on on its thread), then 32 concurrent calls while a ticker
/// greenlet measures the hub's responsiveness. gevent
/// (`gevent77/s5_blocking.py`):
///
/// ```text
/// timeout after <0.2s True
/// kill quick True True
/// results True max gap < 0.05 True
/// ```
#[test]
fn c05_spawn_blocking_timeout_kill_and_many() {
    bounded(|| {
        let t0 = Instant::now();
        let r = with_timeout(20 * MS, || {
            sylvan::spawn_blocking(|| std::thread::sleep(300 * MS))
        });
        assert!(r.is_err());
        assert!(t0.elapsed() < 200 * MS, "{:?}", t0.elapsed());
        let started = Rc::new(Cell::new(false));
        let s = started.clone();
        let g = spawn(move || {
            s.set(true);
            sylvan::spawn_blocking(|| std::thread::sleep(300 * MS))
        });
        yield_until("in spawn_blocking", || started.get());
        sylvan::yield_now();
        let t0 = Instant::now();
        g.kill();
        assert!(t0.elapsed() < 100 * MS, "{:?}", t0.elapsed());
        assert!(g.is_dead());
        let gaps = Rc::new(RefCell::new(Vec::new()));
        let gp = gaps.clone();
        let ticker = spawn(move || {
            let mut last = Instant::now();
            for _ in 0..20 {
                sylvan::sleep(5 * MS);
                gp.borrow_mut().push(last.elapsed());
                last = Instant::now();
            }
        });
        let gs: Vec<Greenlet<u32>> = (0..32u32)
            .map(|i| {
                spawn(move || {
                    sylvan::spawn_blocking(move || {
                        std::thread::sleep(10 * MS);
                        i
                    })
                })
            })
            .collect();
        let mut vals: Vec<u32> = gs.into_iter().map(|g| g.join().unwrap()).collect();
        vals.sort();
        assert_eq!(vals, (0..32).collect::<Vec<_>>());
        ticker.join().unwrap();
        let max = gaps.borrow().iter().max().copied().unwrap();
        assert!(max < 100 * MS, "ticker stalled {max:?}");
    })
}

/// A supervisor written with links: `link_exception` restarts a crashed
/// worker, a `link` callback of another worker blocks (sleeps) and then
/// kills a sibling. gevent (`gevent77/s6_links.py`):
///
/// ```text
/// ["restart after ValueError('crash')", 'done cb start', 'done cb end, sib dead True']
/// [None, 1, 5] True GreenletExit
/// ```
#[test]
fn c06_links_restart_block_and_kill() {
    quiet();
    bounded(|| {
        fn work(n: u32) -> u32 {
            sylvan::sleep(10 * MS);
            if n == 0 {
                panic!("crash");
            }
            n
        }
        let log = Log::default();
        let restarted: Rc<RefCell<Option<Greenlet<u32>>>> = Rc::default();
        let sib = Rc::new(spawn(|| sylvan::sleep(Duration::from_secs(10))));
        let a = spawn(|| work(0));
        {
            let (log, restarted) = (log.clone(), restarted.clone());
            a.link_exception(move |e| {
                log.push(format!("restart after {}", e));
                *restarted.borrow_mut() = Some(spawn(|| work(5)));
            });
        }
        let b = spawn(|| work(1));
        {
            let (log, sib) = (log.clone(), sib.clone());
            b.link(move |_| {
                log.push("done cb start");
                sylvan::sleep(10 * MS);
                sib.kill();
                log.push(format!("done cb end, sib dead {}", sib.is_dead()));
            });
        }
        let gs = [a, b];
        assert!(sylvan::joinall(&gs, None));
        yield_until("both callbacks over", || log.get().len() == 3);
        let l = log.get();
        assert!(
            l[0].starts_with("restart after") && l[0].contains("crash"),
            "{l:?}"
        );
        assert_eq!(l[1..], ["done cb start", "done cb end, sib dead true"]);
        let [a, b] = gs;
        assert!(matches!(a.join(), Err(sylvan::Error::Panicked(_))));
        assert_eq!(b.join().unwrap(), 1);
        let r = restarted.borrow_mut().take().unwrap();
        assert_eq!(r.join().unwrap(), 5);
        assert!(sib.is_dead());
        assert_eq!(
            sib.with_outcome(|o| matches!(o, sylvan::Outcome::Killed)),
            Some(true)
        );
    })
}

/// One `killall` over greenlets parked in `accept`, `read`, a queue get, a
/// semaphore held across a sleep, a semaphore acquire, `sleep` and a join
/// of another greenlet: every `finally` runs (in list order, as gevent's
/// here), the semaphore's permit comes back, the queue keeps no ghost
/// getter, the read socket's peer sees EOF, the listener is closed
/// (connect refused) and the joined greenlet lives on. gevent
/// (`gevent77/s7_killall.py`):
///
/// ```text
/// ['accept', 'read', 'qget', 'holder', 'sem', 'sleep', 'join']
/// sem 1 q 0 dead True
/// q after 1
/// peer eof b'' other alive True
/// connect ConnectionRefusedError
/// ```
#[test]
fn c07_killall_over_every_kind_of_park() {
    bounded(|| {
        let log = Log::default();
        let lst = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = lst.local_addr().unwrap();
        let (mut cli, conn) = crate::util::tcp_pair();
        let q: Rc<Queue<u32>> = Rc::new(Queue::unbounded());
        let sem = Rc::new(Semaphore::new(1));
        let other = Rc::new(spawn(|| sylvan::sleep(Duration::from_secs(10))));
        let l = log.clone();
        let acc = spawn(move || {
            let _f = Fin(l, "accept");
            let _ = lst.accept();
        });
        let l = log.clone();
        let rd = spawn(move || {
            let _f = Fin(l, "read");
            let _ = (&conn).read(&mut [0u8; 10]);
        });
        let (l, q2) = (log.clone(), q.clone());
        let qg = spawn(move || {
            let _f = Fin(l, "qget");
            q2.get();
        });
        let (l, s) = (log.clone(), sem.clone());
        let holder = spawn(move || {
            let _g = s.acquire();
            let _f = Fin(l, "holder");
            sylvan::sleep(Duration::from_secs(10));
        });
        let (l, s) = (log.clone(), sem.clone());
        let sm = spawn(move || {
            let _f = Fin(l.clone(), "sem");
            let _g = s.acquire();
            l.push("sem got!?");
        });
        let l = log.clone();
        let sl = spawn(move || {
            let _f = Fin(l, "sleep");
            sylvan::sleep(Duration::from_secs(10));
        });
        let (l, o) = (log.clone(), other.clone());
        let jn = spawn(move || {
            let _f = Fin(l, "join");
            o.wait(None);
        });
        let gl = [acc, rd, qg, holder, sm, sl, jn];
        yield_until("all parked", || {
            sem.waiters() == 1 && q.getters() == 1 && gl.iter().all(|g| g.is_started())
        });
        sylvan::sleep(5 * MS); // the accept and read are parked too
        assert!(sylvan::killall(&gl, Some(Duration::from_secs(1))).is_ok());
        assert_eq!(
            log.get(),
            ["accept", "read", "qget", "holder", "sem", "sleep", "join"]
        );
        assert_eq!(sem.available(), 1);
        assert_eq!(sem.waiters(), 0);
        assert_eq!((q.len(), q.getters()), (0, 0));
        assert!(gl.iter().all(|g| g.is_dead()));
        q.put(1).unwrap();
        assert_eq!(q.try_get().unwrap(), 1);
        cli.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert_eq!(cli.read(&mut [0u8; 10]).unwrap(), 0);
        assert!(!other.is_dead());
        other.kill();
        let e = TcpStream::connect(addr).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
    })
}

/// `iwait` over four sleepers while another greenlet kills two of them
/// once the first has finished: each is reported once, killed ones too,
/// in the order they died. gevent (`gevent77/s8_iwait.py`):
///
/// ```text
/// [(0, 'NoneType'), (2, 'GreenletExit'), (3, 'GreenletExit'), (1, 'NoneType')]
/// ```
#[test]
fn c08_iwait_while_killed() {
    bounded(|| {
        let gs: Rc<Vec<Greenlet<()>>> = Rc::new(
            (0..4u32)
                .map(|i| spawn(move || sylvan::sleep(10 * MS * (i + 1))))
                .collect(),
        );
        let g2 = gs.clone();
        let killer = spawn(move || {
            g2[0].wait(None);
            g2[2].kill();
            g2[3].kill();
        });
        let objs: Vec<&dyn Waitable> = gs.iter().map(|g| g as &dyn Waitable).collect();
        let order: Vec<(usize, bool)> = sylvan::iwait(&objs, Some(Duration::from_secs(2)))
            .map(|i| {
                let killed = gs[i].with_outcome(|o| matches!(o, sylvan::Outcome::Killed));
                (i, killed == Some(true))
            })
            .collect();
        assert_eq!(order, [(0, false), (2, true), (3, true), (1, false)]);
        killer.join().unwrap();
    })
}

/// `Pool::map` of socket fetches cut by a timeout in the caller. gevent's
/// `map` runs in a greenlet of its own and its tasks go on (its
/// `gevent77/s9_pool_timeout_sock.py` printed `map timed out; pool len 2`,
/// the slow fetches' sockets open until `p.kill()`); sylvan documents that
/// the caller's timeout kills the tasks it started ("they leave the pool at
/// the hub's next turn"): the pool empties and the server sees EOF on the
/// slow connections, as gevent's after its `p.kill()`:
///
/// ```text
/// after kill 0 ["eof fast b''", "eof fast b''", "eof slow b''", "eof slow b''"]
/// ```
#[test]
fn c09_pool_map_of_fetches_cut_by_timeout() {
    bounded(|| {
        let log = Log::default();
        let l = log.clone();
        let server = StreamServer::bind("127.0.0.1:0", move |mut sock: TcpStream, _| {
            let mut req = [0u8; 4];
            sock.read_exact(&mut req).unwrap();
            if &req == b"fast" {
                sock.write_all(b"ok").unwrap();
            }
            let n = sock.read(&mut [0u8; 10]);
            l.push(format!(
                "eof {} {:?}",
                std::str::from_utf8(&req).unwrap(),
                n.ok()
            ));
        })
        .unwrap()
        .start()
        .unwrap();
        let addr = server.local_addr().unwrap();
        let p = Pool::new(4);
        let r = with_timeout(50 * MS, || {
            p.map(["fast", "slow", "slow", "fast"], move |r| {
                let mut c = TcpStream::connect(addr).unwrap();
                c.write_all(r.as_bytes()).unwrap();
                let mut b = [0u8; 10];
                let n = c.read(&mut b).unwrap();
                b[..n].to_vec()
            })
        });
        assert!(r.is_err());
        assert!(p.join_timeout(Duration::from_secs(1)), "tasks left alive");
        yield_until("server saw every EOF", || log.get().len() == 4);
        let mut l = log.get();
        l.sort();
        assert_eq!(
            l,
            [
                "eof fast Some(0)",
                "eof fast Some(0)",
                "eof slow Some(0)",
                "eof slow Some(0)"
            ]
        );
        server.stop(Some(Duration::from_secs(1)));
    })
}

fn set_sndbuf(s: &TcpStream, bytes: libc::c_int) {
    // SAFETY: setsockopt on a live socket with an int option.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}

/// A reader and a writer greenlet on one socket (a chat connection's two
/// halves): the writer, parked on a full send buffer, is killed; the
/// reader goes on receiving, every byte `write` reported reaches the peer,
/// and the reader sees EOF when the peer closes. Then two readers on one
/// socket, the first killed while parked: the second gets the data
/// (sylvan serves them in order, as documented; gevent refuses a second
/// reader with `ConcurrentObjectUseError`). gevent
/// (`gevent77/s10_rw_same_sock.py`):
///
/// ```text
/// writer dead True sent>0 True
/// reader got [b'hello']
/// peer drained all True
/// reader b'' True
/// ```
#[test]
fn c10_writer_killed_reader_goes_on() {
    bounded(|| {
        let (c, mut p) = crate::util::tcp_pair();
        set_sndbuf(&c, 4096);
        let c = Rc::new(c);
        let got: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
        let (cr, g) = (c.clone(), got.clone());
        let reader = spawn(move || {
            let mut buf = [0u8; 100];
            for _ in 0..100 {
                let n = (&*cr).read(&mut buf).unwrap();
                g.borrow_mut().push(buf[..n].to_vec());
                if n == 0 {
                    break;
                }
            }
        });
        let sent = Rc::new(Cell::new(0usize));
        let (cw, s) = (c.clone(), sent.clone());
        let writer = spawn(move || {
            let chunk = vec![b'x'; 65536];
            for _ in 0..100_000 {
                s.set(s.get() + (&*cw).write(&chunk).unwrap());
            }
        });
        yield_until("writer parked on a full buffer", || {
            sent.get() > 0 && !writer.is_dead()
        });
        sylvan::sleep(20 * MS);
        writer.kill();
        assert!(writer.is_dead() && sent.get() > 0);
        p.write_all(b"hello").unwrap();
        yield_until("reader got hello", || !got.borrow().is_empty());
        assert_eq!(*got.borrow(), [b"hello".to_vec()]);
        c.shutdown(Shutdown::Write).unwrap();
        let mut all = Vec::new();
        p.read_to_end(&mut all).unwrap();
        assert_eq!(all.len(), sent.get());
        p.shutdown(Shutdown::Write).unwrap();
        assert!(reader.wait(Some(Duration::from_secs(1))));
        assert_eq!(got.borrow().last().unwrap(), b"");
        reader.join().unwrap();

        // two readers, the first killed while parked
        let (c2, mut p2) = crate::util::tcp_pair();
        let c2 = Rc::new(c2);
        let res = Log::default();
        let rs: Vec<Greenlet<()>> = ["r1", "r2"]
            .into_iter()
            .map(|name| {
                let (c2, res) = (c2.clone(), res.clone());
                spawn(move || {
                    let mut b = [0u8; 10];
                    let n = (&*c2).read(&mut b).unwrap();
                    res.push(format!("{name} {}", String::from_utf8_lossy(&b[..n])));
                })
            })
            .collect();
        sylvan::sleep(10 * MS);
        rs[0].kill();
        p2.write_all(b"data").unwrap();
        assert!(
            rs[1].wait(Some(Duration::from_secs(1))),
            "r2 never got the data"
        );
        assert_eq!(res.get(), ["r2 data"]);
    })
}

/// A client's "shutdown" command makes its handler stop its own server
/// while main is in `serve_forever` and another client idles. sylvan
/// documents that a handler may stop its own server: the others are
/// waited for (here 100 ms) and killed, the caller goes on (it says "bye"),
/// and `serve_forever` returns once the handlers are dealt with. gevent
/// (`gevent77/s11_handler_stops_server.py`, with a pool) kills the calling
/// handler too (`stopped` is never logged, nor "bye" sent) and printed
/// `['stopping', 'end idle', 'end shutdown', 'serve_forever returned']`.
#[test]
fn c11_handler_stops_its_own_server() {
    bounded(|| {
        let log = Log::default();
        let me: Rc<RefCell<Option<StreamServer>>> = Rc::default();
        let (l, m) = (log.clone(), me.clone());
        let server = StreamServer::bind("127.0.0.1:0", move |sock: TcpStream, _| {
            let mut rd = BufReader::new(&sock);
            let cmd = read_line(&mut rd).trim().to_owned();
            let _f = Fin(
                l.clone(),
                if cmd == "shutdown" {
                    "end shutdown"
                } else {
                    "end idle"
                },
            );
            if cmd == "shutdown" {
                l.push("stopping");
                let srv = m.borrow().clone().unwrap();
                srv.stop(Some(100 * MS));
                l.push("stopped");
                (&sock).write_all(b"bye\n").unwrap();
            } else {
                let _ = read_line(&mut rd);
            }
        })
        .unwrap();
        *me.borrow_mut() = Some(server.clone());
        let addr = server.local_addr().unwrap();
        let l = log.clone();
        let clients = spawn(move || {
            let mut idle = TcpStream::connect(addr).unwrap();
            idle.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            idle.write_all(b"idle\n").unwrap();
            sylvan::sleep(10 * MS);
            let mut c = TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            c.write_all(b"shutdown\n").unwrap();
            let mut s = String::new();
            c.read_to_string(&mut s).unwrap();
            l.push(format!("client got {s:?}"));
            let mut s = String::new();
            idle.read_to_string(&mut s).unwrap();
            l.push(format!("idle got {s:?}"));
        });
        server.serve_forever().unwrap();
        log.push("serve_forever returned");
        me.borrow_mut().take();
        assert!(clients.wait(Some(Duration::from_secs(2))));
        clients.join().unwrap();
        assert_eq!(
            log.get(),
            [
                "stopping",
                "end idle",
                "stopped",
                "end shutdown",
                "serve_forever returned",
                "client got \"bye\\n\"",
                "idle got \"\"",
            ]
        );
    })
}

/// `imap` dropped after its first result, then a pool `spawn` parked on a
/// full pool and cut by a timeout. sylvan documents that dropping the
/// iterator kills the tasks it started (gevent's go on: `len after drop 2`,
/// and its imap keeps feeding the pool). The timed-out spawn leaks no slot
/// and its function never runs, as in gevent. gevent
/// (`gevent77/s12_imap_drop_and_pool_spawn_timeout.py`):
///
/// ```text
/// first 0
/// len after drop 2 ['end 0', 'end 1']
/// len after kill 0 ['end 0', 'end 1', 'end 2', 'end 3']
/// spawn timed out, free 0
/// free after 0 1            (its discard link had not run yet)
/// ran
/// ```
#[test]
fn c12_imap_dropped_and_pool_spawn_timed_out() {
    bounded(|| {
        let log = Log::default();
        let p = Pool::new(2);
        let l = log.clone();
        let mut it = p.imap(0u32..5, move |i| {
            let _f = Fin(
                l.clone(),
                ["end 0", "end 1", "end 2", "end 3", "end 4"][i as usize],
            );
            sylvan::sleep(if i < 2 {
                10 * MS * (i + 1)
            } else {
                Duration::from_secs(10)
            });
            i
        });
        assert_eq!(it.next().unwrap().unwrap(), 0);
        drop(it);
        assert!(p.join_timeout(Duration::from_secs(1)));
        assert_eq!(log.take(), ["end 0", "end 1"]);

        let q = Pool::new(1);
        let hold = q.spawn(|| sylvan::sleep(Duration::from_secs(10)));
        let l = log.clone();
        let r = with_timeout(20 * MS, || q.spawn(move || l.push("never")));
        assert!(r.is_err());
        assert_eq!(q.free_count(), 0);
        hold.kill();
        assert_eq!((q.free_count(), q.len()), (1, 0));
        let l = log.clone();
        q.spawn(move || l.push("ran")).join().unwrap();
        assert_eq!(log.take(), ["ran"]);
    })
}

/// A pooled server whose pool (size 1) is full: one client is being
/// handled, a second waits in the kernel's backlog (not accepted); `stop`
/// with both connected. The handled client sees EOF once its handler is
/// killed; the one in the backlog is reset when the listener closes, as
/// in gevent (`gevent77/s13_pooled_server_full_stop.py`):
///
/// ```text
/// c1 b'hello\n'
/// c2 waits
/// ['handler end'] ...
/// c1 after stop b''
/// c2 after stop ConnectionResetError
/// ```
#[test]
fn c13_pooled_server_full_then_stopped() {
    bounded(|| {
        let log = Log::default();
        let l = log.clone();
        let server = StreamServer::bind("127.0.0.1:0", move |sock: TcpStream, _| {
            let _f = Fin(l.clone(), "handler end");
            (&sock).write_all(b"hello\n").unwrap();
            let _ = read_line(&mut BufReader::new(&sock));
        })
        .unwrap()
        .with_pool(Pool::new(1))
        .start()
        .unwrap();
        let addr = server.local_addr().unwrap();
        let mut c1 = TcpStream::connect(addr).unwrap();
        c1.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut b = [0u8; 10];
        let n = c1.read(&mut b).unwrap();
        assert_eq!(&b[..n], b"hello\n");
        let mut c2 = TcpStream::connect(addr).unwrap();
        c2.set_read_timeout(Some(50 * MS)).unwrap();
        assert_eq!(c2.read(&mut b).unwrap_err().kind(), ErrorKind::TimedOut);
        c2.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        server.stop(Some(50 * MS));
        assert_eq!(log.get(), ["handler end"]);
        assert_eq!(server.accepted(), 1);
        assert_eq!(c1.read(&mut b).unwrap(), 0);
        assert_eq!(
            c2.read(&mut b).unwrap_err().kind(),
            ErrorKind::ConnectionReset
        );
    })
}

/// A pool member that kills its own pool while main waits in `join`:
/// the others are killed, then the caller (its code after `kill` never
/// runs), and `join` returns with the pool empty. gevent
/// (`gevent77/s14_member_kills_pool.py`; the order of the others follows
/// its set):
///
/// ```text
/// ['w1 kills the pool', 'end 2', 'end 0', 'end 1'] 0 ['GreenletExit', 'GreenletExit', 'GreenletExit']
/// ```
#[test]
fn c14_member_kills_its_pool() {
    bounded(|| {
        let log = Log::default();
        let p = Rc::new(Pool::new(3));
        let gs: Vec<Greenlet<()>> = (0..3)
            .map(|i| {
                let (l, pp) = (log.clone(), p.clone());
                p.spawn(move || {
                    let _f = Fin(l.clone(), ["end 0", "end 1", "end 2"][i]);
                    if i == 1 {
                        sylvan::sleep(10 * MS);
                        l.push("w1 kills the pool");
                        pp.kill();
                        l.push("w1 after kill?!");
                    } else {
                        sylvan::sleep(Duration::from_secs(10));
                    }
                })
            })
            .collect();
        assert!(p.join_timeout(Duration::from_secs(2)));
        let l = log.get();
        assert_eq!(l[0], "w1 kills the pool");
        assert_eq!(l.len(), 4, "{l:?}");
        let mut others = l[1..3].to_vec();
        others.sort();
        assert_eq!(others, ["end 0", "end 2"]);
        assert_eq!(l[3], "end 1");
        assert_eq!(p.len(), 0);
        assert!(gs.into_iter().all(|g| g.join().unwrap_err().is_killed()));
    })
}

/// A child process that prints a line and hangs: a reader greenlet on its
/// stdout (`os::Fd`), `wait_child` under a timeout, then the child killed:
/// the reader sees EOF and `wait_child` gives the signal. gevent
/// (`gevent77/s15_subprocess.py`):
///
/// ```text
/// wait timed out [b'started\n']
/// status -9
/// [b'started\n', 'EOF']
/// ```
#[test]
fn c15_subprocess_reader_wait_timeout_kill() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};
    bounded(|| {
        let mut child = Command::new("sh")
            .args(["-c", "echo started; exec sleep 10"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = sylvan::os::Fd::new(child.stdout.take().unwrap()).unwrap();
        let lines = Log::default();
        let l = lines.clone();
        let reader = spawn(move || {
            for line in BufReader::new(out).lines() {
                l.push(line.unwrap());
            }
            l.push("EOF");
        });
        let r = with_timeout(200 * MS, || sylvan::os::wait_child(&mut child));
        assert!(r.is_err(), "{r:?}");
        assert_eq!(lines.get(), ["started"]);
        child.kill().unwrap();
        let st = sylvan::os::wait_child(&mut child).unwrap();
        assert_eq!(st.signal(), Some(libc::SIGKILL));
        assert!(reader.wait(Some(Duration::from_secs(1))));
        assert_eq!(lines.get(), ["started", "EOF"]);
    })
}

/// Graceful shutdown: a `SIGTERM` handler stops a pooled server while a
/// request is in progress and main is in `serve_forever`; the request
/// finishes within the grace, its client gets the reply then EOF, and
/// `serve_forever` returns after the stop. (In a child process: the signal
/// is process-wide.) gevent (`gevent77/s16_sigterm_graceful.py`):
///
/// ```text
/// ['work start', 'sigterm', 'work end', 'stopped', 'serve_forever returned', "client got b'done\n'"]
/// ```
#[test]
fn c16_sigterm_stops_pooled_server_gracefully() {
    crate::util::in_child(
        "probes77::c16_sigterm_stops_pooled_server_gracefully",
        "p77-c16",
        || {
            let log = Log::default();
            let working = Rc::new(Event::new());
            let (l, w) = (log.clone(), working.clone());
            let server = StreamServer::bind("127.0.0.1:0", move |sock: TcpStream, _| {
                let _ = read_line(&mut BufReader::new(&sock));
                l.push("work start");
                w.set();
                sylvan::sleep(30 * MS);
                (&sock).write_all(b"done\n").unwrap();
                l.push("work end");
            })
            .unwrap()
            .with_pool(Pool::new(4));
            let (l, srv) = (log.clone(), server.clone());
            let _term = sylvan::signal(libc::SIGTERM, move || {
                l.push("sigterm");
                srv.stop(Some(Duration::from_secs(1)));
                l.push("stopped");
            })
            .unwrap();
            let addr = server.local_addr().unwrap();
            let (l, w) = (log.clone(), working.clone());
            let client = sylvan::spawn_later(10 * MS, move || {
                let mut c = TcpStream::connect(addr).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                c.write_all(b"req\n").unwrap();
                w.wait();
                // SAFETY: sends SIGTERM to this process, which handles it.
                unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
                let mut s = String::new();
                c.read_to_string(&mut s).unwrap();
                l.push(format!("client got {s:?}"));
            });
            server.serve_forever().unwrap();
            log.push("serve_forever returned");
            assert!(client.wait(Some(Duration::from_secs(2))));
            assert_eq!(
                log.get(),
                [
                    "work start",
                    "sigterm",
                    "work end",
                    "stopped",
                    "serve_forever returned",
                    "client got \"done\\n\"",
                ]
            );
        },
    );
}

/// A server run for a while: `serve_forever` under `with_timeout`, a
/// client connected and idle. sylvan documents that a timeout in
/// `serve_forever` kills the accept loop and the handlers without waiting
/// (gevent's `finally` runs a `stop` with its one-second grace, whose pool
/// kill then ends the handler): the client sees EOF, new connections are
/// refused, and afterwards the hub has nothing left (`wait_all` returns).
#[test]
fn c17_serve_forever_cut_by_timeout() {
    bounded(|| {
        let log = Log::default();
        let l = log.clone();
        let server = StreamServer::bind("127.0.0.1:0", move |sock: TcpStream, _| {
            let _f = Fin(l.clone(), "handler end");
            let _ = read_line(&mut BufReader::new(&sock));
        })
        .unwrap();
        let addr = server.local_addr().unwrap();
        let client = spawn(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            c.read(&mut [0u8; 10])
        });
        let r = with_timeout(50 * MS, || server.serve_forever());
        assert!(r.is_err(), "{r:?}");
        assert_eq!(client.join().unwrap().unwrap(), 0);
        assert_eq!(log.get(), ["handler end"]);
        assert_eq!(server.handlers(), 0);
        let e = TcpStream::connect(addr).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
    });
    // outside `bounded`, whose own timer would count
    assert!(sylvan::wait_all(Some(Duration::from_secs(1))));
}

/// A socket read timeout inside a longer `with_timeout`, then a
/// `with_timeout` shorter than the socket's timeout: whichever is shorter
/// fires, each as its own kind (`io::ErrorKind::TimedOut` for the socket,
/// `Err(Elapsed)` for the timeout), and the socket still works after both.
/// gevent (`gevent77/s18_sock_timeout_vs_timeout.py`):
///
/// ```text
/// socket timeout first
/// Timeout first
/// b'still ok'
/// ```
#[test]
fn c18_socket_timeout_and_timeout_nested() {
    bounded(|| {
        let (c, mut p) = crate::util::tcp_pair();
        let mut b = [0u8; 10];
        c.set_read_timeout(Some(30 * MS)).unwrap();
        let r = with_timeout(500 * MS, || (&c).read(&mut b));
        assert_eq!(r.unwrap().unwrap_err().kind(), ErrorKind::TimedOut);
        c.set_read_timeout(Some(500 * MS)).unwrap();
        let r = with_timeout(30 * MS, || (&c).read(&mut b));
        assert!(r.is_err(), "{r:?}");
        p.write_all(b"still ok").unwrap();
        let n = (&c).read(&mut b).unwrap();
        assert_eq!(&b[..n], b"still ok");
    })
}

/// A UDP request with retries on a socket timeout; the server greenlet
/// answers only the third datagram. gevent (`gevent77/s19_udp_retry.py`):
///
/// ```text
/// timeout 0
/// timeout 1
/// got b'answer q2' on attempt 2
/// [b'q0', b'q1', b'q2']
/// ```
#[test]
fn c19_udp_request_with_retries() {
    use sylvan::net::UdpSocket;
    bounded(|| {
        let srv = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = srv.local_addr().unwrap();
        let seen = Log::default();
        let s = seen.clone();
        let server = spawn(move || {
            let mut b = [0u8; 100];
            for _ in 0..10 {
                let (n, from) = srv.recv_from(&mut b).unwrap();
                let d = String::from_utf8_lossy(&b[..n]).into_owned();
                s.push(d.clone());
                if s.get().len() == 3 {
                    srv.send_to(format!("answer {d}").as_bytes(), from).unwrap();
                }
            }
        });
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(30 * MS)).unwrap();
        let trace = Log::default();
        let mut b = [0u8; 100];
        for attempt in 0..5 {
            c.send_to(format!("q{attempt}").as_bytes(), addr).unwrap();
            match c.recv_from(&mut b) {
                Ok((n, _)) => {
                    trace.push(format!(
                        "got {} on attempt {attempt}",
                        String::from_utf8_lossy(&b[..n])
                    ));
                    break;
                }
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::TimedOut);
                    trace.push(format!("timeout {attempt}"));
                }
            }
        }
        assert_eq!(
            trace.get(),
            ["timeout 0", "timeout 1", "got answer q2 on attempt 2"]
        );
        assert_eq!(seen.get(), ["q0", "q1", "q2"]);
        server.kill();
    })
}

/// Callers of `spawn_blocking` killed while their jobs are still queued
/// behind a busy pool (not started). gevent's `threadpool.apply` waits
/// for a slot in the caller before it queues anything, so a caller killed
/// then never submits its job: `gevent77/s20_threadpool_kill_queued.py`
/// (pool size 4, 16 callers, the last 8 killed) printed
/// `[0, 1, 2, 3, 4, 5, 6, 7] False 8`: only the 8 live callers' jobs ran.
/// Found as a BUG here (sylvan queued every job at once and ran each to
/// its end, the work of callers long gone holding the pool); fixed since:
/// a job queued behind busy threads whose caller stopped waiting before a
/// thread took it is dropped unrun.
#[test]
fn c20_spawn_blocking_queued_jobs_of_killed_callers() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    bounded(|| {
        let gate = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicUsize::new(0));
        let ran = Arc::new(AtomicUsize::new(0));
        let n = sylvan::blocking_threads() + 24;
        let gs: Vec<Greenlet<()>> = (0..n)
            .map(|_| {
                let (gate, started, ran) = (gate.clone(), started.clone(), ran.clone());
                spawn(move || {
                    sylvan::spawn_blocking(move || {
                        started.fetch_add(1, Ordering::SeqCst);
                        // held until the gate opens (bounded: 3 s)
                        for _ in 0..3000 {
                            if gate.load(Ordering::SeqCst) {
                                break;
                            }
                            std::thread::sleep(MS);
                        }
                        ran.fetch_add(1, Ordering::SeqCst);
                    })
                })
            })
            .collect();
        // every caller has submitted; the pool is full
        yield_until("every caller parked", || gs.iter().all(|g| g.is_started()));
        sylvan::sleep(20 * MS);
        let started_at_kill = started.load(Ordering::SeqCst);
        assert!(started_at_kill <= sylvan::blocking_threads());
        // the last 20 callers go away: their jobs have not started
        for g in &gs[n - 20..] {
            g.kill();
        }
        gate.store(true, Ordering::SeqCst);
        for g in gs.into_iter().take(n - 20) {
            g.join().unwrap();
        }
        // let any orphaned job that would still run do so
        sylvan::spawn_blocking(|| std::thread::sleep(100 * MS));
        sylvan::sleep(100 * MS);
        assert_eq!(
            ran.load(Ordering::SeqCst),
            n - 20,
            "jobs of killed callers that had not started ran anyway"
        );
    })
}

/// `imap_unordered` where one task kills the pool: the other running
/// task and the caller are killed (results `Err(Killed)`), and the
/// iterator goes on to spawn and finish the remaining items, as gevent's
/// (`gevent77/s21_imap_member_kills.py`):
///
/// ```text
/// ['GreenletExit', 'GreenletExit', 2, 3, 4] 0
/// ```
#[test]
fn c21_imap_unordered_task_kills_the_pool() {
    bounded(|| {
        let p = Rc::new(Pool::new(2));
        let pp = p.clone();
        let res: Vec<String> = p
            .imap_unordered(0u32..5, move |i| {
                if i == 1 {
                    sylvan::sleep(5 * MS);
                    pp.kill();
                }
                sylvan::sleep(10 * MS);
                i
            })
            .map(|r| match r {
                Ok(i) => i.to_string(),
                Err(e) if e.is_killed() => "Killed".into(),
                Err(e) => format!("{e:?}"),
            })
            .collect();
        assert_eq!(res, ["Killed", "Killed", "2", "3", "4"]);
        assert_eq!(p.len(), 0);
    })
}

/// A `stop` that waits for handlers without bound, cut short by a timeout
/// in its caller: the listener is closed already (connections refused),
/// the handler is still alive; a second `stop` finishes the job (the
/// handler is killed, the client sees EOF). gevent
/// (`gevent77/s22_stop_cut_short.py`, pooled):
///
/// ```text
/// stop cut short [] 1
/// new connect ConnectionRefusedError
/// second stop ['handler end'] 0 b''
/// ```
#[test]
fn c22_stop_cut_short_then_finished() {
    bounded(|| {
        let log = Log::default();
        let l = log.clone();
        let server = StreamServer::bind("127.0.0.1:0", move |sock: TcpStream, _| {
            let _f = Fin(l.clone(), "handler end");
            let _ = (&sock).read(&mut [0u8; 10]);
        })
        .unwrap()
        .with_pool(Pool::new(4))
        .start()
        .unwrap();
        let addr = server.local_addr().unwrap();
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        yield_until("handler running", || server.handlers() == 1);
        let r = with_timeout(30 * MS, || server.stop(None));
        assert!(r.is_err());
        assert!(log.get().is_empty());
        assert_eq!(server.handlers(), 1);
        let e = TcpStream::connect(addr).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
        server.stop(Some(Duration::ZERO));
        assert_eq!(log.get(), ["handler end"]);
        assert_eq!(server.handlers(), 0);
        assert_eq!(c.read(&mut [0u8; 10]).unwrap(), 0);
    })
}

/// A thread that returns with its server still running and a client
/// connected (the program forgot to stop it): the last handle dropped
/// stops accepting, and the thread's exit kills the handler, whose
/// destructor runs and whose socket closes, so the client sees EOF.
/// (gevent: a thread's hub is destroyed with its greenlets left as they
/// are; the README documents sylvan's teardown as killing them.)
#[test]
fn c23_thread_exits_with_server_running() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let ended = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let e = ended.clone();
    let t = std::thread::spawn(move || {
        struct Flag(Arc<AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let wrote = Rc::new(Cell::new(false));
        let w = wrote.clone();
        let server = StreamServer::bind("127.0.0.1:0", move |sock: TcpStream, _| {
            let _f = Flag(e.clone());
            (&sock).write_all(b"hi").unwrap();
            w.set(true);
            let _ = (&sock).read(&mut [0u8; 10]);
        })
        .unwrap()
        .start()
        .unwrap();
        tx.send(server.local_addr().unwrap()).unwrap();
        // the client connects; wait (bounded) until its handler has
        // written and parked in its read
        yield_until("handler wrote", || wrote.get());
        sylvan::yield_now();
        // blocks this thread (and its hub) until the client has read
        go_rx.recv().unwrap();
        sylvan::yield_now();
        // returns: `server` dropped, then the thread's hub torn down
    });
    let addr = rx.recv().unwrap();
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut b = [0u8; 2];
    c.read_exact(&mut b).unwrap();
    go_tx.send(()).unwrap();
    t.join().unwrap();
    assert!(
        ended.load(Ordering::SeqCst),
        "the handler's destructor never ran"
    );
    assert_eq!(c.read(&mut [0u8; 10]).unwrap(), 0);
}

/// "Kick": another greenlet shuts a client's socket down (through a
/// `try_clone` kept in a registry) while its handler is parked in `read`
/// and its writer is parked on a full send buffer: both wake and fail
/// or end (the reader sees end of stream, the writer an error), as
/// gevent's `shutdown` cancels both waits (`gevent77/s24_kick.py`:
/// `['read cancel_wait_ex', 'write cancel_wait_ex'] True True`).
#[test]
fn c24_shutdown_from_another_greenlet_wakes_reader_and_writer() {
    bounded(|| {
        let (_c, s) = crate::util::tcp_pair();
        set_sndbuf(&s, 4096);
        let registry = s.try_clone().unwrap();
        let log = Log::default();
        let (l, rs) = (log.clone(), s.try_clone().unwrap());
        let r = spawn(move || {
            l.push(match (&rs).read(&mut [0u8; 10]) {
                Ok(n) => format!("read Ok({n})"),
                Err(e) => format!("read {:?}", e.kind()),
            })
        });
        let (l, ws) = (log.clone(), s);
        let sent = Rc::new(Cell::new(0usize));
        let st = sent.clone();
        let w = spawn(move || {
            let chunk = vec![b'x'; 65536];
            for _ in 0..100_000 {
                match (&ws).write(&chunk) {
                    Ok(n) => st.set(st.get() + n),
                    Err(e) => {
                        l.push(format!("write {:?}", e.kind()));
                        return;
                    }
                }
            }
        });
        yield_until("writer wrote", || sent.get() > 0);
        sylvan::sleep(20 * MS);
        registry.shutdown(Shutdown::Both).unwrap();
        assert!(sylvan::joinall(&[r, w], Some(Duration::from_secs(1))));
        let mut l = log.get();
        l.sort();
        assert_eq!(l.len(), 2, "{l:?}");
        assert_eq!(l[0], "read Ok(0)");
        assert!(l[1].starts_with("write "), "{l:?}");
    })
}

/// Results collected by `link_value` callbacks into a bounded queue that
/// main drains after joining the workers. gevent's `join` returns before
/// the callbacks run to their end (`gevent77/s25_collector.py` printed
/// `joined [0, 10]`); sylvan's `join` waits for the callbacks that borrow
/// the outcome (documented in the README and `Greenlet::link`), so the
/// second join waits on a callback parked on the full queue, which only
/// main would drain: the program cannot go on, and main's `join` panics
/// with "would block forever" naming the link callbacks, never hangs.
/// Pinned as the documented difference.
#[test]
fn c25_collector_callbacks_and_join() {
    let results: Rc<Queue<u32>> = Rc::new(Queue::bounded(1));
    let ws: Vec<Greenlet<u32>> = (0..2u32).map(|i| spawn(move || i * 10)).collect();
    for g in &ws {
        let r = results.clone();
        g.link_value(move |v| r.put(*v).unwrap());
    }
    let p = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for g in ws {
            g.join().unwrap();
        }
    }))
    .expect_err("the second join cannot return");
    let msg = sylvan::runtime::payload_message(&*p);
    assert!(msg.contains("would block forever"), "{msg}");
    assert!(msg.contains("link callbacks"), "{msg}");
    // what gevent's program then does: drain, and the callback finishes
    assert_eq!(results.try_get().unwrap(), 0);
    sylvan::yield_now();
    assert_eq!(results.try_get().unwrap(), 10);
}
