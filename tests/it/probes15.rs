//! Probe round 15: a gevent user's first programs, ported as a newcomer
//! would write them (a chat server, a port checker, a JoinableQueue
//! pipeline, a parallel fetcher with `sylvan::ureq` against Python's
//! `http.server`, an AsyncResult fan-in, a rate limiter, `spawn_blocking`
//! offload, a link-based supervisor), and the surprises met on the way.
//!
//! Each test pins one behaviour a gevent user meets: most are what the docs
//! say (kept as regressions), a few are differences from gevent or
//! footguns the docs leave implicit (named as such in the test's comment).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sylvan::net::{StreamServer, TcpListener, TcpStream};
use sylvan::pool::Pool;
use sylvan::sync::{
    AsyncResult, BoundedSemaphore, Event, GetError, JoinableQueue, Queue, Semaphore,
};
use sylvan::{Outcome, Timeout, Waitable};

use crate::util::{DropFlag, bounded, quiet, yield_until};

const MS: fn(u64) -> Duration = Duration::from_millis;

// ---- timeouts and servers whose guard is not kept ----

/// Footgun: gevent's `Timeout.start_new(d)` stays armed until cancelled,
/// but `Timeout::start(d);` as a statement drops the guard at once, so
/// nothing is interrupted. `Timeout` is now `#[must_use]`, so the compiler
/// warns about that statement; pinned here with an explicit `drop`.
#[test]
fn timeout_guard_not_kept_is_cancelled_at_once() {
    bounded(|| {
        let g = sylvan::spawn(|| {
            drop(Timeout::start(MS(5)));
            sylvan::sleep(MS(30));
            "slept through"
        });
        assert_eq!(g.join().unwrap(), "slept through");
        // Kept, it fires.
        let g = sylvan::spawn(|| {
            let _t = Timeout::start(MS(5));
            sylvan::sleep(MS(500));
        });
        assert!(g.join().unwrap_err().is_timeout());
    });
}

fn started_and_dropped(
    flag: Rc<Cell<u32>>,
    release: Rc<Event>,
) -> io::Result<(std::net::SocketAddr, TcpStream)> {
    let server = StreamServer::bind("127.0.0.1:0", move |mut c: TcpStream, _| {
        let _kept = DropFlag(flag.clone());
        release.wait();
        let _ = c.write_all(b"late");
    })?;
    let addr = server.local_addr()?;
    // gevent: `server.start()` and carry on; here the handle is dropped
    // at the end of this function.
    let server = server.start()?;
    let first = TcpStream::connect(addr)?;
    yield_until("the first handler started", || server.handlers() == 1);
    Ok((addr, first))
}

/// `server.start()?;` with the returned handle dropped (the natural port
/// of gevent's `server.start()`) stops accepting at once: new clients are
/// refused, while a handler already running finishes. Documented on
/// `StreamServer`, which is now `#[must_use]`: the compiler warns about
/// `server.start()?;`.
#[test]
fn started_server_whose_handle_is_dropped_refuses_new_clients() {
    bounded(|| {
        let finished = Rc::new(Cell::new(0));
        let release = Rc::new(Event::new());
        let (addr, first) = started_and_dropped(finished.clone(), release.clone()).unwrap();
        let err = crate::util::first_error(|| TcpStream::connect(addr));
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        release.set();
        let mut got = Vec::new();
        first
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        io::Read::read_to_end(&mut &first, &mut got).unwrap();
        assert_eq!(got, b"late");
        assert_eq!(finished.get(), 1);
    });
}

// ---- chat server ----

type Outboxes = Rc<RefCell<HashMap<u64, Rc<Queue<String>>>>>;

/// A chat server: one greenlet per client plus a writer greenlet fed by
/// the client's queue; a client that leaves mid-message has its partial
/// line broadcast (as `readline` in gevent), and everything is cleaned up.
#[test]
fn chat_server_broadcasts_and_survives_a_client_leaving_mid_message() {
    bounded(|| {
        let outboxes: Outboxes = Rc::default();
        let next = Rc::new(Cell::new(0u64));
        let ob = outboxes.clone();
        let server = StreamServer::bind("127.0.0.1:0", move |conn: TcpStream, _| {
            let id = next.get();
            next.set(id + 1);
            let outbox = Rc::new(Queue::unbounded());
            ob.borrow_mut().insert(id, outbox.clone());
            let conn = Rc::new(conn);
            let writer = {
                let (conn, outbox) = (conn.clone(), outbox.clone());
                sylvan::spawn(move || {
                    for msg in outbox.iter() {
                        if writeln!(&*conn, "{msg}").is_err() {
                            break;
                        }
                    }
                })
            };
            for line in BufReader::new(&*conn).lines() {
                let Ok(line) = line else { break };
                // copy the targets out: no RefCell borrow across a put
                let targets: Vec<_> = ob
                    .borrow()
                    .iter()
                    .filter(|(k, _)| **k != id)
                    .map(|(_, q)| q.clone())
                    .collect();
                for q in targets {
                    let _ = q.put(format!("{id}: {line}"));
                }
            }
            ob.borrow_mut().remove(&id);
            outbox.close();
            let _ = writer.join();
        })
        .unwrap()
        .start()
        .unwrap();
        let addr = server.local_addr().unwrap();

        let listener = TcpStream::connect(addr).unwrap();
        listener
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        yield_until("listener registered", || outboxes.borrow().len() == 1);
        let mut leaver = TcpStream::connect(addr).unwrap();
        yield_until("leaver registered", || outboxes.borrow().len() == 2);
        leaver.write_all(b"hello\nhalf a mess").unwrap();
        drop(leaver);

        let mut r = BufReader::new(&listener);
        let mut got = Vec::new();
        for _ in 0..2 {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            got.push(line.trim_end().to_string());
        }
        assert_eq!(got, ["1: hello", "1: half a mess"]);
        yield_until("leaver deregistered", || outboxes.borrow().len() == 1);
        drop(r);
        drop(listener);
        yield_until("all handlers gone", || server.handlers() == 0);
        assert!(outboxes.borrow().is_empty());
        server.stop(Some(MS(100)));
    });
}

/// Footgun the docs do not mention: the natural port of gevent's
/// `for q in clients.values(): q.put(msg)` holds a `RefCell` borrow across
/// a put that parks (bounded queue); a client leaving meanwhile needs
/// `borrow_mut` to deregister and panics with `BorrowMutError`. In gevent
/// the dict is simply mutated. The docs that recommend `Rc` sharing could
/// say: never hold a `RefCell` borrow across a call that can park.
#[test]
fn refcell_borrow_held_across_a_parking_put_panics_the_other_greenlet() {
    bounded(|| {
        quiet();
        let clients: Rc<RefCell<HashMap<u32, Rc<Queue<u32>>>>> = Rc::default();
        let full = Rc::new(Queue::bounded(1));
        full.put(0).unwrap();
        clients.borrow_mut().insert(1, full.clone());
        let c = clients.clone();
        let broadcaster = sylvan::spawn(move || {
            for q in c.borrow().values() {
                let _ = q.put(7); // parks: the queue is full
            }
        });
        sylvan::yield_now();
        let c = clients.clone();
        let leaver = sylvan::spawn(move || {
            c.borrow_mut().remove(&1);
        });
        let err = leaver.join().unwrap_err();
        assert!(err.panic().unwrap().message().contains("borrow"), "{err}");
        assert_eq!(full.get(), Some(0));
        broadcaster.join().unwrap();
    });
}

// ---- port checker ----

/// A port checker: `Pool::imap_unordered` over a port range with
/// `connect_timeout`; open ports are found, closed ones are
/// `ConnectionRefused` with the address in the message.
#[test]
fn port_checker_with_a_pool_and_connect_timeouts() {
    bounded(|| {
        let listeners: Vec<TcpListener> = (0..3)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let mut ours: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        ours.sort();
        let pool = Pool::new(20);
        let mut open = Vec::new();
        for r in pool.imap_unordered(ours.clone(), |port: u16| {
            let r = TcpStream::connect_timeout(("127.0.0.1", port), MS(500));
            (port, r.is_ok())
        }) {
            let (port, ok) = r.unwrap();
            if ok {
                open.push(port);
            }
        }
        open.sort();
        assert_eq!(open, ours);
        drop(listeners);
        let closed = ours[0];
        let e =
            crate::util::first_error(|| TcpStream::connect_timeout(("127.0.0.1", closed), MS(200)));
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED), "{e}");
        assert!(pool.is_empty());
    });
}

// ---- JoinableQueue pipeline ----

/// A two-stage pipeline with graceful shutdown: `join` each stage, then
/// `close` it so the workers' loops end.
#[test]
fn joinable_queue_pipeline_shuts_down_gracefully() {
    bounded(|| {
        let stage1: Rc<JoinableQueue<u32>> = Rc::new(JoinableQueue::bounded(3));
        let stage2: Rc<JoinableQueue<u32>> = Rc::new(JoinableQueue::unbounded());
        let workers: Vec<_> = (0..3)
            .map(|_| {
                let (s1, s2) = (stage1.clone(), stage2.clone());
                sylvan::spawn(move || {
                    for n in s1.iter() {
                        sylvan::sleep(MS(u64::from(n % 3)));
                        s2.put(n * n).unwrap();
                        s1.task_done();
                    }
                })
            })
            .collect();
        let sum = Rc::new(Cell::new(0));
        let printer = {
            let (s2, sum) = (stage2.clone(), sum.clone());
            sylvan::spawn(move || {
                for n in s2.iter() {
                    sum.set(sum.get() + n);
                    s2.task_done();
                }
            })
        };
        for n in 0..20 {
            stage1.put(n).unwrap();
        }
        stage1.join();
        stage1.close();
        stage2.join();
        stage2.close();
        for w in workers {
            w.join().unwrap();
        }
        printer.join().unwrap();
        assert_eq!(sum.get(), (0..20).map(|n| n * n).sum::<u32>());
    });
}

/// As in gevent, a worker that dies between `get` and `task_done` leaves
/// the count unfinished for good: `join_timeout` says false, and a plain
/// `join` from main with nothing left to run panics with "would block
/// forever" instead of hanging. (No guard type ties `task_done` to a drop;
/// every worker must remember it on every path.)
#[test]
fn joinable_queue_worker_panic_leaves_the_item_unfinished() {
    bounded(|| {
        quiet();
        let q: Rc<JoinableQueue<u32>> = Rc::new(JoinableQueue::unbounded());
        let qq = q.clone();
        let w = sylvan::spawn(move || {
            for n in qq.iter() {
                assert_ne!(n, 1, "bad item");
                qq.task_done();
            }
        });
        for n in 0..3 {
            q.put(n).unwrap();
        }
        assert!(!q.join_timeout(MS(50)));
        assert!(w.join().unwrap_err().is_panic());
        assert_eq!(q.unfinished(), 2);
        assert_eq!(q.len(), 1);
    });
}

// ---- parallel fetcher with ureq ----

const HTTP_SERVER: &str = r#"
import http.server, socketserver, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path.startswith('/slow'):
            time.sleep(2)
        if self.path.startswith('/missing'):
            self.send_error(404); return
        body = ('page %s' % self.path).encode()
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    def handle_error(self, *a): pass
s = S(('127.0.0.1', 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

/// Python's `http.server` on a port it chose; killed on drop.
struct PyServer(Child, u16);

impl PyServer {
    fn start() -> PyServer {
        let mut child = Command::new("python3")
            .args(["-c", HTTP_SERVER])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let out = sylvan::os::Fd::new(child.stdout.take().unwrap()).unwrap();
        out.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line).unwrap();
        let port = line.trim().parse().expect("python printed its port");
        PyServer(child, port)
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The gevent fetcher: a greenlet per URL, failures (a 404, a request
/// past ureq's timeout) raised as panics so that `link_exception` reports
/// them; a request cut by `with_timeout` leaves the agent usable.
#[test]
fn ureq_fetcher_reports_failures_through_link_exception() {
    bounded(|| {
        quiet();
        let py = PyServer::start();
        let port = py.1;
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(MS(1000)))
            .http_status_as_error(true)
            .build();
        let agent = sylvan::ureq::agent(config);
        let failures = Rc::new(RefCell::new(Vec::new()));
        let paths = ["/a", "/missing", "/slow", "/b"];
        let gs: Vec<_> = paths
            .iter()
            .map(|&p| {
                let agent = agent.clone();
                let url = format!("http://127.0.0.1:{port}{p}");
                let g = sylvan::spawn(move || {
                    let mut res = agent.get(&url).call().unwrap_or_else(|e| panic!("{e}"));
                    res.body_mut().read_to_string().unwrap()
                });
                let f = failures.clone();
                g.link_exception(move |e| {
                    f.borrow_mut()
                        .push(format!("{p} {}", e.panic().unwrap().message()))
                });
                g
            })
            .collect();
        let bodies: Vec<_> = gs.into_iter().map(|g| g.join().ok()).collect();
        assert_eq!(
            bodies,
            [
                Some("page /a".to_string()),
                None,
                None,
                Some("page /b".to_string())
            ]
        );
        let mut f = failures.borrow().clone();
        f.sort();
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(
            f[0].starts_with("/missing") && f[0].contains("404"),
            "{f:?}"
        );
        assert!(
            f[1].starts_with("/slow") && f[1].contains("timeout"),
            "{f:?}"
        );

        let r = sylvan::with_timeout(MS(50), || {
            agent.get(&format!("http://127.0.0.1:{port}/slow2")).call()
        });
        assert!(r.is_err());
        let mut res = agent
            .get(&format!("http://127.0.0.1:{port}/after"))
            .call()
            .unwrap();
        assert_eq!(res.body_mut().read_to_string().unwrap(), "page /after");
    });
}

/// Difference from gevent worth a doc line: a greenlet that *returns*
/// `Err` succeeded as far as links go (`link_value` fires,
/// `link_exception` does not). gevent code reports failures by raising,
/// so a port that returns `io::Result` loses its `link_exception` reports.
#[test]
fn link_exception_ignores_a_returned_err() {
    bounded(|| {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let g = sylvan::spawn(|| -> io::Result<()> { Err(io::Error::other("fetch failed")) });
        let s = seen.clone();
        g.link_exception(move |_| s.borrow_mut().push("exception"));
        let s = seen.clone();
        g.link_value(move |v| {
            s.borrow_mut().push(if v.is_err() {
                "value(Err)"
            } else {
                "value(Ok)"
            })
        });
        assert!(g.join().unwrap().is_err());
        assert_eq!(*seen.borrow(), ["value(Err)"]);
    });
}

// ---- AsyncResult fan-in ----

/// gevent's `for r in iwait(results): r.get()`: indices come in the order
/// the results were set, a failed one included; `wait(count=1)` returns the
/// first ready; a timed `wait` returns fewer than asked.
#[test]
fn async_result_fan_in_with_iwait_and_wait() {
    bounded(|| {
        let results: Vec<Rc<AsyncResult<u64, String>>> =
            (0..4).map(|_| Rc::new(AsyncResult::new())).collect();
        for (i, r) in results.iter().enumerate() {
            let r = r.clone();
            sylvan::spawn(move || {
                sylvan::sleep(MS(40 - 10 * i as u64));
                if i == 1 {
                    r.fail(format!("worker {i}")).unwrap();
                } else {
                    r.set(i as u64).unwrap();
                }
            });
        }
        let objs: Vec<&dyn Waitable> = results.iter().map(|r| &**r as &dyn Waitable).collect();
        let order: Vec<usize> = sylvan::iwait(&objs, Some(Duration::from_secs(2))).collect();
        assert_eq!(order, [3, 2, 1, 0]);
        assert_eq!(results[1].get(), Err(GetError::Failed("worker 1".into())));
        assert_eq!(results[1].is_ok(), Some(false));
        assert_eq!(results[0].peek(), Some(Ok(0)));

        let never: AsyncResult<u8, String> = AsyncResult::new();
        let stop = Rc::new(Event::new());
        let s = stop.clone();
        let g = sylvan::spawn_later(MS(5), move || s.set());
        assert_eq!(sylvan::wait(&[&never, &*stop], None, Some(1)), [1]);
        assert_eq!(
            sylvan::wait(&[&never, &*stop, &g], Some(MS(20)), None),
            [1, 2]
        );
        assert_eq!(never.get_timeout(MS(1)), Err(GetError::TimedOut));
    });
}

// ---- rate limiter ----

/// A rate limiter as gevent users write it: a permit per call, given back
/// by `spawn_later(period, release)`; plus a `BoundedSemaphore` for
/// concurrency. At most N calls start per period.
#[test]
fn semaphore_rate_limiter_with_spawn_later_release() {
    bounded(|| {
        let tokens = Rc::new(Semaphore::new(3));
        let conc = Rc::new(BoundedSemaphore::new(2));
        let start = Instant::now();
        let starts = Rc::new(RefCell::new(Vec::new()));
        let gs: Vec<_> = (0..9)
            .map(|_| {
                let (tokens, conc, starts) = (tokens.clone(), conc.clone(), starts.clone());
                sylvan::spawn(move || {
                    tokens.acquire().forget();
                    let t = tokens.clone();
                    sylvan::spawn_later(MS(60), move || t.release());
                    let _c = conc.acquire();
                    starts.borrow_mut().push(start.elapsed());
                    sylvan::sleep(MS(2));
                })
            })
            .collect();
        assert!(sylvan::joinall(&gs, Some(Duration::from_secs(2))));
        let starts = starts.borrow();
        assert_eq!(starts.len(), 9);
        // the 4th and 7th calls waited for a period each
        assert!(starts[3] >= MS(60), "{starts:?}");
        assert!(starts[6] >= MS(120), "{starts:?}");
        assert!(starts[2] < MS(60), "{starts:?}");
        assert!(BoundedSemaphore::new(1).release().is_err());
    });
}

// ---- spawn_blocking ----

/// CPU and file work offloaded with `spawn_blocking` from several
/// greenlets while a ticker keeps ticking; a timed-out offload returns at
/// once; a panic in the job comes back to the caller.
#[test]
fn spawn_blocking_offload_keeps_the_ticker_ticking() {
    bounded(|| {
        quiet();
        // The jobs wait (2 s at most) until the ticker has ticked five
        // times: offloads that blocked the hub would starve it.
        let ticks = Arc::new(AtomicU32::new(0));
        let tk = ticks.clone();
        let ticker = sylvan::spawn(move || {
            loop {
                sylvan::sleep(MS(2));
                tk.fetch_add(1, Ordering::SeqCst);
            }
        });
        let jobs: Vec<_> = (0..3)
            .map(|_| {
                let tk = ticks.clone();
                sylvan::spawn(move || {
                    sylvan::spawn_blocking(move || {
                        let t = Instant::now();
                        while tk.load(Ordering::SeqCst) < 5 && t.elapsed() < MS(2000) {
                            std::thread::sleep(MS(1));
                        }
                    })
                })
            })
            .collect();
        assert!(sylvan::joinall(&jobs, None));
        let n = ticks.load(Ordering::SeqCst);
        assert!(n >= 5, "ticker starved: {n} ticks");

        // A job that would hold its thread for 3 s.
        let (gate, gated) = std::sync::mpsc::channel::<()>();
        let t = Instant::now();
        let r = sylvan::with_timeout(MS(10), move || {
            sylvan::spawn_blocking(move || {
                let _ = gated.recv_timeout(MS(3000));
            })
        });
        assert!(r.is_err());
        assert!(t.elapsed() < MS(1500), "{:?}", t.elapsed());
        drop(gate);

        let g = sylvan::spawn(|| sylvan::spawn_blocking(|| -> u8 { panic!("job exploded") }));
        let e = g.join().unwrap_err();
        assert_eq!(e.panic().unwrap().message(), "job exploded");
        ticker.kill();
    });
}

// ---- supervisor ----

/// A supervisor restarting crashed workers from a `link` callback: a panic
/// and an escaped timeout are restarted, a kill is not (a normal exit for
/// links, as in gevent).
#[test]
fn supervisor_restarts_crashed_workers_via_link() {
    bounded(|| {
        quiet();
        struct Sup {
            log: RefCell<Vec<String>>,
            current: RefCell<Option<Rc<sylvan::Greenlet<()>>>>,
            restarted: Event,
        }
        fn start(sup: &Rc<Sup>, attempt: u32) {
            let g = Rc::new(sylvan::spawn(move || match attempt {
                0 => panic!("crash"),
                1 => {
                    let _t = Timeout::start(MS(1));
                    sylvan::sleep(MS(500));
                }
                _ => sylvan::sleep(Duration::from_secs(60)),
            }));
            let s = sup.clone();
            g.link(move |o| {
                let why = match o {
                    Outcome::Returned(()) => "returned",
                    Outcome::Panicked(_) => "panicked",
                    Outcome::Killed => "killed",
                    Outcome::TimedOut => "timed out",
                };
                s.log.borrow_mut().push(format!("{attempt} {why}"));
                if !matches!(o, Outcome::Killed) {
                    start(&s, attempt + 1);
                    if attempt == 1 {
                        s.restarted.set();
                    }
                }
            });
            *sup.current.borrow_mut() = Some(g);
        }
        let sup = Rc::new(Sup {
            log: RefCell::default(),
            current: RefCell::default(),
            restarted: Event::new(),
        });
        start(&sup, 0);
        assert!(sup.restarted.wait_timeout(Duration::from_secs(2)));
        let g = sup.current.borrow_mut().take().unwrap();
        g.kill();
        yield_until("the kill's link ran", || sup.log.borrow().len() == 3);
        assert_eq!(*sup.log.borrow(), ["0 panicked", "1 timed out", "2 killed"]);
        assert!(sup.current.borrow().is_none());
    });
}

/// Difference from gevent: gevent's `join` returns as soon as the greenlet
/// is dead, while its `link` callbacks run in greenlets of their own;
/// sylvan's `join` also waits for every link callback (they borrow the
/// outcome), so a supervisor callback that sleeps a back-off delays the
/// `join` of the dead worker by that much.
#[test]
fn join_waits_for_a_sleeping_link_callback() {
    bounded(|| {
        let g = sylvan::spawn(|| 5);
        g.link(|_| sylvan::sleep(MS(60)));
        let t = Instant::now();
        assert_eq!(g.join().unwrap(), 5);
        assert!(t.elapsed() >= MS(60), "{:?}", t.elapsed());
        // `wait` does not wait for the callbacks
        let g = sylvan::spawn(|| 5);
        let done = Rc::new(Cell::new(false));
        let d = done.clone();
        g.link(move |_| {
            sylvan::sleep(MS(60));
            d.set(true);
        });
        assert!(g.wait(None));
        assert!(!done.get(), "wait waited for the link callback");
    });
}

/// `Pool::map` cut by `with_timeout` kills the tasks it started (gevent
/// leaves them running), but without waiting: right after the timeout
/// they still count in the pool, and are gone after one turn of the hub.
#[test]
fn pool_map_cut_by_a_timeout_kills_its_tasks_without_waiting() {
    bounded(|| {
        let pool = Pool::new(4);
        let drops = Rc::new(Cell::new(0));
        let d = drops.clone();
        let r = sylvan::with_timeout(MS(10), || {
            pool.map(0..8u32, move |_| {
                let _f = DropFlag(d.clone());
                sylvan::sleep(Duration::from_secs(5));
            })
        });
        assert!(r.is_err());
        assert_eq!(pool.len(), 4);
        yield_until("the killed tasks died", || pool.is_empty());
        assert_eq!(drops.get(), 4);
    });
}

// ---- child processes (sylvan::os) ----

/// Reaps a child when dropped, as a gevent user would guard a subprocess.
struct Reaper(
    Option<Child>,
    Rc<RefCell<Option<io::Result<std::process::ExitStatus>>>>,
);

impl Drop for Reaper {
    fn drop(&mut self) {
        let mut child = self.0.take().unwrap();
        let _ = child.kill();
        *self.1.borrow_mut() = Some(sylvan::os::wait_child(&mut child));
        // whatever happened above, do not leave a zombie behind
        let _ = child.wait();
    }
}

/// Regression (found here): `wait_child` in a destructor run by a kill
/// (the natural "kill and reap the child on drop" guard) failed at once
/// with "descriptor read would block, but the calling greenlet is
/// unwinding", and the child was not reaped. While unwinding it now blocks
/// in `Child::wait`, as `spawn_blocking` runs inline then.
#[test]
fn wait_child_in_a_destructor_during_a_kill_reaps_the_child() {
    bounded(|| {
        let status = Rc::new(RefCell::new(None));
        let s = status.clone();
        let g = sylvan::spawn(move || {
            let _guard = Reaper(Some(Command::new("sleep").arg("30").spawn().unwrap()), s);
            sylvan::sleep(Duration::from_secs(60));
        });
        sylvan::sleep(MS(20));
        g.kill();
        let r = status.borrow_mut().take().expect("the guard ran");
        let st = r.expect("wait_child in the destructor");
        assert!(!st.success());
    });
}

/// The same guard outside an unwind: `wait_child` reaps the killed child.
#[test]
fn wait_child_in_a_destructor_on_a_normal_return_reaps_the_child() {
    bounded(|| {
        let status = Rc::new(RefCell::new(None));
        let s = status.clone();
        let g = sylvan::spawn(move || {
            let _guard = Reaper(Some(Command::new("sleep").arg("30").spawn().unwrap()), s);
            sylvan::sleep(MS(5));
        });
        g.join().unwrap();
        let r = status.borrow_mut().take().expect("the guard ran");
        assert!(!r.unwrap().success());
    });
}
