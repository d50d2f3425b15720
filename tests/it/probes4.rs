//! Fourth round of probes: the `sylvan::ureq` integration (ureq 3 over
//! sylvan sockets, its connector, transport and resolver, the hub-thread
//! checks and "one agent per hub"), and the threads layer around it
//! (`spawn_blocking`, `Handle`, the `Send` channel, off-thread name
//! resolution). Each test cites the gevent behaviour (gevent.threadpool,
//! gevent.socket, a monkey-patched blocking HTTP client) or the ureq /
//! sylvan documented behaviour it checks. Tests marked
//! `#[ignore = "BUG: ..."]` show a sylvan bug; the rest are regression
//! tests. Every test is bounded (`bounded`, socket or ureq timeouts, or
//! `recv_timeout` on OS-thread channels).

use std::cell::{Cell, RefCell};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc as stdmpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sylvan::net::{StreamServer, TcpStream};
use sylvan::{Handle, sleep, spawn, spawn_blocking, with_timeout, yield_now};

use crate::net_peers::set_linger_zero;
use crate::util::{DropFlag, bounded, quiet, yield_until};

const MS: Duration = Duration::from_millis(1);

// ============================================================ HTTP server

/// One request as the test server saw it.
struct Req {
    path: String,
    body: Vec<u8>,
    /// The client's port: tells connections apart.
    peer: u16,
    /// 1 for the first request on its connection.
    n: u32,
}

/// Counters shared by a test server's handlers.
#[derive(Clone, Default)]
struct Stats {
    /// Connections whose handler saw the client close (EOF or error).
    closed: Rc<Cell<u32>>,
    requests: Rc<Cell<u32>>,
}

/// Reads one request head (and a Content-Length body); `None` at EOF or on
/// an error.
fn read_request(r: &mut BufReader<&TcpStream>) -> Option<(String, Vec<u8>)> {
    let mut first = String::new();
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        if line == "\r\n" {
            break;
        }
        if first.is_empty() {
            first = line.trim_end().to_owned();
        } else if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    let path = first.split(' ').nth(1).unwrap_or("").to_owned();
    Some((path, body))
}

/// Writes a complete response with a Content-Length body.
fn respond(c: &TcpStream, body: &[u8], extra_headers: &str) -> io::Result<()> {
    let mut w = c;
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{extra_headers}\r\n",
        body.len()
    );
    let mut all = head.into_bytes();
    all.extend_from_slice(body);
    w.write_all(&all)
}

/// Starts a keep-alive HTTP/1.1 server on 127.0.0.1 (a sylvan StreamServer
/// on this hub). `handle` answers each request; returning false closes the
/// connection. Returns the server, its base URL and its counters.
fn serve(handle: impl Fn(&Req, &TcpStream) -> bool + 'static) -> (StreamServer, String, Stats) {
    serve_on("127.0.0.1:0", handle)
}

fn serve_on(
    addr: &str,
    handle: impl Fn(&Req, &TcpStream) -> bool + 'static,
) -> (StreamServer, String, Stats) {
    let stats = Stats::default();
    let st = stats.clone();
    let handle = Rc::new(handle);
    let server = StreamServer::bind(addr, move |c: TcpStream, peer: SocketAddr| {
        let mut r = BufReader::new(&c);
        let mut n = 0;
        loop {
            let Some((path, body)) = read_request(&mut r) else {
                st.closed.set(st.closed.get() + 1);
                return;
            };
            n += 1;
            st.requests.set(st.requests.get() + 1);
            let req = Req {
                path,
                body,
                peer: peer.port(),
                n,
            };
            if !handle(&req, &c) {
                return;
            }
        }
    })
    .unwrap()
    .start()
    .unwrap();
    let url = format!("http://{}", server.local_addr().unwrap());
    (server, url, stats)
}

/// The default answer: "<path> <client port> <n>".
fn hello(req: &Req, c: &TcpStream) -> bool {
    let body = format!("{} {} {}", req.path, req.peer, req.n);
    respond(c, body.as_bytes(), "").is_ok()
}

fn agent() -> ureq::Agent {
    sylvan::ureq::agent(ureq::Agent::config_builder().build())
}

type AgentConfig = ureq::config::ConfigBuilder<ureq::typestate::AgentScope>;

fn agent_with(f: impl FnOnce(AgentConfig) -> AgentConfig) -> ureq::Agent {
    sylvan::ureq::agent(f(ureq::Agent::config_builder()).build())
}

fn get_text(agent: &ureq::Agent, url: &str) -> Result<String, ureq::Error> {
    agent.get(url).call()?.body_mut().read_to_string()
}

/// The client port a "hello" answer names.
fn port_of(answer: &str) -> u16 {
    answer.split(' ').nth(1).unwrap().parse().unwrap()
}

/// A greenlet that counts 2 ms sleeps until `stop` is set: proof that the
/// hub kept running other greenlets.
fn ticker() -> (sylvan::Greenlet<u32>, Rc<Cell<bool>>) {
    let stop = Rc::new(Cell::new(false));
    let s = stop.clone();
    let g = spawn(move || {
        let mut n = 0;
        while !s.get() {
            sleep(2 * MS);
            n += 1;
        }
        n
    });
    (g, stop)
}

/// A server answer that waits (parked) until the client goes away, then
/// counts it: `read` returns 0 or an error once the client's socket closed.
fn wait_for_client_close(c: &TcpStream, seen: &Cell<u32>) {
    let mut b = [0u8; 64];
    let mut r = c;
    c.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
    loop {
        match r.read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    seen.set(seen.get() + 1);
}

// ============================================================ ureq: basics

// A blocking HTTP client under gevent (monkey-patched urllib3/requests)
// keeps connections alive: sequential requests from one greenlet reuse one
// connection. ureq's pool does the same over sylvan sockets.
#[test]
fn u01_sequential_requests_reuse_one_kept_alive_connection() {
    bounded(|| {
        let (server, url, stats) = serve(hello);
        let agent = agent();
        let mut ports = Vec::new();
        for i in 0..5 {
            let answer = get_text(&agent, &format!("{url}/p{i}")).unwrap();
            assert!(answer.starts_with(&format!("/p{i} ")), "{answer}");
            ports.push(port_of(&answer));
        }
        assert!(ports.iter().all(|p| *p == ports[0]), "{ports:?}");
        assert_eq!(server.accepted(), 1);
        assert_eq!(stats.requests.get(), 5);
        drop(agent);
        // dropping the agent closes its pooled connection
        yield_until("pooled connection closed", || stats.closed.get() == 1);
        server.stop(Some(Duration::ZERO));
    });
}

// gevent: many greenlets each doing blocking HTTP at once, all on one
// thread; a request parks only its greenlet (the ticker keeps ticking).
#[test]
fn u02_many_greenlets_concurrent_requests_all_correct() {
    bounded(|| {
        let (server, url, stats) = serve(|req, c| {
            // a short park so that requests really overlap
            sleep(MS);
            hello(req, c)
        });
        let agent = agent();
        let (tick, stop) = ticker();
        let gs: Vec<_> = (0..40)
            .map(|g| {
                let (agent, url) = (agent.clone(), url.clone());
                spawn(move || {
                    for i in 0..5 {
                        let path = format!("/g{g}/r{i}");
                        let answer = get_text(&agent, &format!("{url}{path}")).unwrap();
                        assert!(answer.starts_with(&format!("{path} ")), "{answer}");
                    }
                })
            })
            .collect();
        for g in gs {
            g.join().unwrap();
        }
        stop.set(true);
        let ticks = tick.join().unwrap();
        assert!(ticks >= 2, "ticker starved: {ticks}");
        assert_eq!(stats.requests.get(), 200);
        drop(agent);
        yield_until("every server connection closed", || server.handlers() == 0);
        assert_eq!(stats.closed.get() as u64, server.accepted());
        server.stop(Some(Duration::ZERO));
    });
}

// gevent: a slow server parks only the requesting greenlet; the others run
// for the whole wait.
#[test]
fn u03_slow_response_parks_only_the_requesting_greenlet() {
    bounded(|| {
        let (server, url, _) = serve(|req, c| {
            sleep(Duration::from_millis(200));
            hello(req, c)
        });
        let agent = agent();
        let (tick, stop) = ticker();
        let t = Instant::now();
        let answer = get_text(&agent, &format!("{url}/slow")).unwrap();
        assert!(t.elapsed() >= Duration::from_millis(190));
        stop.set(true);
        let ticks = tick.join().unwrap();
        assert!(answer.starts_with("/slow "));
        assert!(ticks >= 20, "only {ticks} ticks of 2 ms in 200 ms");
        server.stop(Some(Duration::ZERO));
    });
}

/// The bytes of the chunked body of `u04`: chunk `i` is `i % 300 + 1`
/// bytes of `i as u8`.
fn chunk(i: usize) -> Vec<u8> {
    vec![i as u8; i % 300 + 1]
}

// HTTP/1.1 chunked bodies (what gevent's pywsgi streams): many small chunks
// arriving in separate segments with parks in between, then the connection
// is reused for the next request.
#[test]
fn u04_chunked_body_many_small_chunks_with_pauses_then_reuse() {
    bounded(|| {
        let (server, url, _) = serve(|req, c| {
            if req.path != "/chunked" {
                return hello(req, c);
            }
            let mut w = c;
            w.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap();
            for i in 0..400 {
                let data = chunk(i);
                // the chunk header and its data in separate writes, now and
                // then a park in the middle of a chunk
                w.write_all(format!("{:x}\r\n", data.len()).as_bytes())
                    .unwrap();
                if i % 50 == 7 {
                    sleep(MS);
                }
                let (a, b) = data.split_at(data.len() / 2);
                w.write_all(a).unwrap();
                if i % 37 == 3 {
                    yield_now();
                }
                w.write_all(b).unwrap();
                w.write_all(b"\r\n").unwrap();
            }
            w.write_all(b"0\r\n\r\n").is_ok()
        });
        let agent = agent();
        let want: Vec<u8> = (0..400).flat_map(chunk).collect();
        let mut res = agent.get(format!("{url}/chunked")).call().unwrap();
        let got = res.body_mut().read_to_vec().unwrap();
        assert_eq!(got.len(), want.len());
        assert!(got == want, "chunked body corrupted");
        let answer = get_text(&agent, &format!("{url}/after")).unwrap();
        assert!(answer.ends_with(" 2"), "kept alive after chunked: {answer}");
        assert_eq!(server.accepted(), 1);
        server.stop(Some(Duration::ZERO));
    });
}

// A chunked body with one chunk far larger than the connection's input
// buffer (sylvan's GrowBuffers start at 16 KiB and grow to the configured
// size), read one byte at a time through `into_reader`: no byte lost or
// duplicated at the buffer's growth or shift points.
#[test]
fn u05_large_chunk_read_one_byte_at_a_time() {
    bounded(|| {
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let body = big.clone();
        let (server, url, _) = serve(move |_, c| {
            let mut w = c;
            let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            out.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
            out.extend_from_slice(&body);
            out.extend_from_slice(b"\r\n5\r\ntail!\r\n0\r\n\r\n");
            // in uneven pieces
            for piece in out.chunks(7777) {
                if w.write_all(piece).is_err() {
                    return false;
                }
            }
            true
        });
        let agent = agent_with(|b| b.input_buffer_size(64 << 10));
        let res = agent.get(format!("{url}/big")).call().unwrap();
        let mut r = res.into_body().into_reader();
        let mut got = Vec::with_capacity(big.len() + 5);
        let mut b = [0u8; 1];
        loop {
            match r.read(&mut b).unwrap() {
                0 => break,
                _ => got.push(b[0]),
            }
        }
        assert_eq!(got.len(), big.len() + 5);
        assert!(got[..big.len()] == big[..], "large chunk corrupted");
        assert_eq!(&got[big.len()..], b"tail!");
        server.stop(Some(Duration::ZERO));
    });
}

// A Content-Length body in many TCP segments with parks between them,
// read with odd-sized reads; then keep-alive reuse.
#[test]
fn u06_content_length_body_trickled_in_segments() {
    bounded(|| {
        let body: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 253) as u8).collect();
        let b2 = body.clone();
        let (server, url, _) = serve(move |req, c| {
            if req.path != "/trickle" {
                return hello(req, c);
            }
            let mut w = c;
            w.write_all(
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", b2.len()).as_bytes(),
            )
            .unwrap();
            for (i, piece) in b2.chunks(9_999).enumerate() {
                w.write_all(piece).unwrap();
                if i % 4 == 0 {
                    sleep(MS);
                }
            }
            true
        });
        let agent = agent();
        let res = agent.get(format!("{url}/trickle")).call().unwrap();
        let mut r = res.into_body().into_reader();
        let mut got = Vec::new();
        let mut buf = [0u8; 1_237];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got == body, "body corrupted: {} bytes", got.len());
        drop(r);
        let answer = get_text(&agent, &format!("{url}/after")).unwrap();
        assert!(answer.ends_with(" 2"), "{answer}");
        server.stop(Some(Duration::ZERO));
    });
}

// A POST with a body larger than the socket buffers: the write side parks
// (gevent's sendall) while a slow server reads it in small pieces.
#[test]
fn u07_large_post_body_to_a_slow_reader() {
    bounded(|| {
        let (server, url, _) = serve(|req, c| {
            let sum: u64 = req.body.iter().map(|b| *b as u64).sum();
            respond(c, format!("{} {sum}", req.body.len()).as_bytes(), "").is_ok()
        });
        let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 199) as u8).collect();
        let want: u64 = body.iter().map(|b| *b as u64).sum();
        let agent = agent();
        let answer = agent
            .post(format!("{url}/upload"))
            .send(&body[..])
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        assert_eq!(answer, format!("{} {want}", body.len()));
        server.stop(Some(Duration::ZERO));
    });
}

// ======================================================== ureq: bad peers

// gevent.socket: a reset peer gives ECONNRESET to the reader. Mid-body, the
// body read fails (never a silently truncated body), and the agent goes on
// working with a new connection.
#[test]
fn u08_connection_reset_mid_body_is_an_error_and_agent_goes_on() {
    bounded(|| {
        let (server, url, _) = serve(|req, c| {
            if req.path != "/reset" {
                return hello(req, c);
            }
            let mut w = c;
            w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                .unwrap();
            w.write_all(&[b'x'; 1000]).unwrap();
            sleep(20 * MS);
            set_linger_zero(c.as_raw_fd());
            false // the handler drops the socket: a reset
        });
        let agent = agent();
        let mut res = agent.get(format!("{url}/reset")).call().unwrap();
        let e = res.body_mut().read_to_vec().unwrap_err();
        let kind = match &e {
            ureq::Error::Io(io) => io.kind(),
            other => panic!("expected an io error, got {other:?}"),
        };
        assert!(
            matches!(
                kind,
                io::ErrorKind::ConnectionReset | io::ErrorKind::UnexpectedEof
            ),
            "{e:?}"
        );
        let answer = get_text(&agent, &format!("{url}/after")).unwrap();
        assert!(answer.starts_with("/after "), "{answer}");
        assert_eq!(server.accepted(), 2);
        server.stop(Some(Duration::ZERO));
    });
}

// A server that sends the head (Content-Length 50) and closes: the body read
// is an error, not 0 bytes of success.
#[test]
fn u09_server_closes_after_headers_is_an_error() {
    bounded(|| {
        let (server, url, _) = serve(|req, c| {
            if req.path != "/headonly" {
                return hello(req, c);
            }
            let mut w = c;
            w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nonly-ten!!")
                .unwrap();
            false
        });
        let agent = agent();
        let mut res = agent.get(format!("{url}/headonly")).call().unwrap();
        let r = res.body_mut().read_to_vec();
        assert!(r.is_err(), "a truncated body read as complete: {r:?}");
        assert!(get_text(&agent, &format!("{url}/after")).is_ok());
        server.stop(Some(Duration::ZERO));
    });
}

// A server that reads the request and closes without a response: call()
// fails at once with an io error (no hang, no timeout needed).
#[test]
fn u10_server_closes_without_any_response() {
    bounded(|| {
        let (server, url, _) = serve(|_, _| false);
        let agent = agent();
        let t = Instant::now();
        let e = agent.get(format!("{url}/x")).call().unwrap_err();
        assert!(
            matches!(e, ureq::Error::Io(_) | ureq::Error::Protocol(_)),
            "{e:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(2));
        server.stop(Some(Duration::ZERO));
    });
}

// A kept-alive connection that the server closed while idle in the pool
// must not be used for the next request: the transport's `is_open` probe
// sees the FIN and ureq opens a new connection. Every request succeeds.
#[test]
fn u11_idle_pooled_connection_closed_by_server_is_not_reused() {
    bounded(|| {
        // answers one request per connection, without "Connection: close"
        let (server, url, stats) = serve(|req, c| {
            hello(req, c);
            false
        });
        let agent = agent();
        for i in 0..5 {
            // the server's close has reached us before the next request
            yield_until("server closed", || stats.requests.get() == i);
            sleep(2 * MS);
            let r = get_text(&agent, &format!("{url}/r{i}"));
            assert!(r.is_ok(), "request {i} on a stale connection: {r:?}");
        }
        assert_eq!(server.accepted(), 5);
        server.stop(Some(Duration::ZERO));
    });
}

// Bytes after the declared body (a broken server) mean the connection is
// not reused: the next response is not read from that garbage.
#[test]
fn u12_extra_bytes_after_the_body_prevent_reuse() {
    bounded(|| {
        let (server, url, _) = serve(|req, c| {
            let mut w = c;
            if req.path == "/garbage" {
                w.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nBAD",
                )
                .is_ok()
            } else {
                hello(req, c)
            }
        });
        let agent = agent();
        assert_eq!(
            get_text(&agent, &format!("{url}/garbage")).unwrap(),
            "hello"
        );
        sleep(2 * MS);
        let answer = get_text(&agent, &format!("{url}/next")).unwrap();
        assert!(answer.starts_with("/next "), "read the garbage: {answer}");
        assert_eq!(server.accepted(), 2);
        server.stop(Some(Duration::ZERO));
    });
}

// A response body not read to its end: the connection cannot be reused, so
// it is closed (the server sees EOF), not leaked or pooled.
#[test]
fn u13_unread_body_closes_the_connection() {
    bounded(|| {
        let (server, url, stats) = serve(|req, c| {
            let body = vec![b'z'; 100_000];
            if req.path == "/big" {
                respond(c, &body, "").is_ok()
            } else {
                hello(req, c)
            }
        });
        let agent = agent();
        let res = agent.get(format!("{url}/big")).call().unwrap();
        let mut r = res.into_body().into_reader();
        let mut first = [0u8; 10];
        r.read_exact(&mut first).unwrap();
        drop(r);
        yield_until("server saw the abandoned connection close", || {
            stats.closed.get() == 1
        });
        let answer = get_text(&agent, &format!("{url}/after")).unwrap();
        assert!(answer.ends_with(" 1"), "a new connection: {answer}");
        server.stop(Some(Duration::ZERO));
    });
}

// Connecting to a port nobody listens on: an io error of kind
// ConnectionRefused at once (as std and gevent.socket).
#[test]
fn u14_connection_refused_is_a_clear_io_error() {
    bounded(|| {
        let port = crate::util::spare_port();
        let agent = agent();
        let t = Instant::now();
        let e = agent
            .get(format!("http://127.0.0.1:{port}/"))
            .call()
            .unwrap_err();
        match &e {
            ureq::Error::Io(io) => assert_eq!(io.kind(), io::ErrorKind::ConnectionRefused),
            other => panic!("{other:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(1));
    });
}

// ========================================================== ureq: timeouts

/// A server whose answer to "/hang" waits until the client goes away
/// (counting it in `gone`), and answers "hello" otherwise.
fn hanging_server() -> (StreamServer, String, Rc<Cell<u32>>) {
    let gone = Rc::new(Cell::new(0));
    let g = gone.clone();
    let (server, url, _) = serve(move |req, c| match req.path.as_str() {
        "/hang" => {
            wait_for_client_close(c, &g);
            false
        }
        "/halfbody" => {
            let mut w = c;
            w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
                .unwrap();
            wait_for_client_close(c, &g);
            false
        }
        _ => hello(req, c),
    });
    (server, url, gone)
}

// ureq's global timeout over a sylvan socket: Error::Timeout(Global) on
// time (not early, not much late), the connection is closed, and the agent
// is usable afterwards.
#[test]
fn u15_global_timeout_on_a_server_that_never_answers() {
    bounded(|| {
        let (server, url, gone) = hanging_server();
        let agent = agent_with(|b| b.timeout_global(Some(Duration::from_millis(150))));
        let t = Instant::now();
        let e = agent.get(format!("{url}/hang")).call().unwrap_err();
        let took = t.elapsed();
        assert!(
            matches!(e, ureq::Error::Timeout(ureq::Timeout::Global)),
            "{e:?}"
        );
        assert!(
            took >= Duration::from_millis(140) && took < Duration::from_secs(2),
            "{took:?}"
        );
        yield_until("timed-out connection closed", || gone.get() == 1);
        assert!(get_text(&agent, &format!("{url}/ok")).is_ok());
        server.stop(Some(Duration::ZERO));
    });
}

// A per-request timeout (RequestBuilder::config) applies to that request
// only; the agent's other requests have none.
#[test]
fn u16_per_request_timeout_then_untimed_requests() {
    bounded(|| {
        let (server, url, gone) = hanging_server();
        let agent = agent();
        let t = Instant::now();
        let e = agent
            .get(format!("{url}/hang"))
            .config()
            .timeout_global(Some(Duration::from_millis(100)))
            .build()
            .call()
            .unwrap_err();
        assert!(matches!(e, ureq::Error::Timeout(_)), "{e:?}");
        assert!(t.elapsed() < Duration::from_secs(2));
        yield_until("timed-out connection closed", || gone.get() == 1);
        // the next request on this agent is not limited by the old timeout:
        // a 300 ms answer comes through
        let (slow, slow_url, _) = serve(|req, c| {
            sleep(Duration::from_millis(300));
            hello(req, c)
        });
        assert!(get_text(&agent, &format!("{slow_url}/slow")).is_ok());
        slow.stop(Some(Duration::from_secs(1)));
        server.stop(Some(Duration::ZERO));
    });
}

// timeout_recv_body: a server that stalls mid-body gives a timeout error
// from the body read (not a hang, not a truncated Ok).
#[test]
fn u17_recv_body_timeout_mid_body() {
    bounded(|| {
        let (server, url, gone) = hanging_server();
        let agent = agent_with(|b| b.timeout_recv_body(Some(Duration::from_millis(120))));
        let mut res = agent.get(format!("{url}/halfbody")).call().unwrap();
        let t = Instant::now();
        let e = res.body_mut().read_to_vec().unwrap_err();
        assert!(matches!(e, ureq::Error::Timeout(_)), "{e:?}");
        assert!(t.elapsed() < Duration::from_secs(2));
        drop(res);
        yield_until("connection closed", || gone.get() == 1);
        server.stop(Some(Duration::ZERO));
    });
}

// timeout_per_read bounds each read, not the whole body: a body trickling
// one piece per 15 ms for ~300 ms succeeds under a 100 ms per-read limit.
#[test]
fn u18_per_read_timeout_is_per_read_not_total() {
    bounded(|| {
        let (server, url, _) = serve(|_, c| {
            let mut w = c;
            w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n")
                .unwrap();
            for _ in 0..20 {
                sleep(15 * MS);
                if w.write_all(b"x").is_err() {
                    return false;
                }
            }
            true
        });
        let agent = agent_with(|b| b.timeout_per_read(Some(Duration::from_millis(100))));
        let body = get_text(&agent, &format!("{url}/trickle")).unwrap();
        assert_eq!(body, "x".repeat(20));
        server.stop(Some(Duration::ZERO));
    });
}

// gevent.Timeout around a blocking HTTP call: the call is abandoned at the
// deadline, its socket closed (no leaked connection: the server sees EOF),
// and the client (agent) is usable afterwards.
#[test]
fn u19_with_timeout_abandons_the_request_and_closes_its_socket() {
    bounded(|| {
        let (server, url, gone) = hanging_server();
        let agent = agent();
        let a = agent.clone();
        let u = url.clone();
        let t = Instant::now();
        let r = with_timeout(Duration::from_millis(60), move || {
            a.get(format!("{u}/hang")).call().map(|_| ())
        });
        assert!(r.is_err(), "the request did not time out");
        assert!(t.elapsed() < Duration::from_secs(1));
        yield_until("abandoned connection closed", || gone.get() == 1);
        for i in 0..3 {
            assert!(get_text(&agent, &format!("{url}/ok{i}")).is_ok());
        }
        server.stop(Some(Duration::ZERO));
    });
}

// gevent: killing a greenlet blocked in a socket read (GreenletExit)
// unwinds it; here mid-body. Its connection is closed, the agent stays
// usable, and other greenlets' requests are unaffected.
#[test]
fn u20_killed_greenlet_mid_body_closes_its_connection() {
    bounded(|| {
        let (server, url, gone) = hanging_server();
        let agent = agent();
        let (a, u) = (agent.clone(), url.clone());
        let started = Rc::new(Cell::new(false));
        let s = started.clone();
        let g = spawn(move || {
            let mut res = a.get(format!("{u}/halfbody")).call().unwrap();
            s.set(true);
            res.body_mut().read_to_vec()
        });
        yield_until("head received", || started.get());
        sleep(5 * MS);
        g.kill();
        assert!(g.join().unwrap_err().is_killed());
        yield_until("killed request's connection closed", || gone.get() == 1);
        let (a, u) = (agent.clone(), url.clone());
        let ok = spawn(move || get_text(&a, &format!("{u}/ok")));
        assert!(ok.join().unwrap().is_ok());
        server.stop(Some(Duration::ZERO));
    });
}

// A connect that hangs (full accept backlog) under timeout_global: a
// Timeout error on time (gevent.socket.create_connection's timeout), not a
// hang and not an io error. ureq's own connector names the reason Connect
// or Global depending on a race, so either is accepted.
#[test]
fn u21_connect_that_hangs_times_out_on_time() {
    bounded(|| {
        let (_l, addr, fill) = crate::net::full_backlog_listener();
        if fill.is_empty() {
            eprintln!("backlog not filled here: skipped");
            return;
        }
        let agent = agent_with(|b| b.timeout_global(Some(Duration::from_millis(150))));
        let t = Instant::now();
        let e = agent.get(format!("http://{addr}/")).call().unwrap_err();
        let took = t.elapsed();
        assert!(
            matches!(
                e,
                ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Global)
            ),
            "{e:?}"
        );
        assert!(
            took >= Duration::from_millis(140) && took < Duration::from_secs(2),
            "{took:?}"
        );
    });
}

// ureq 3.5's Agent::shutdown "closes every connection the agent holds ...
// A request blocked on a socket read or write returns an Error::Io straight
// away" (custom connectors take part via register_shutdown). In a greenlet
// program: main shuts the agent down while a greenlet waits for a slow
// server; that greenlet's call must fail at once.
#[test]
fn u22_agent_shutdown_interrupts_a_request_in_flight() {
    bounded(|| {
        let (server, url, _gone) = hanging_server();
        let agent = agent();
        let (a, u) = (agent.clone(), url.clone());
        let g = spawn(move || {
            let t = Instant::now();
            let r = a.get(format!("{u}/hang")).call().map(|_| ());
            (r, t.elapsed())
        });
        // the reference: ureq's own connector on an OS thread is
        // interrupted by shutdown (this hub serves it meanwhile)
        let plain = ureq::Agent::new_with_config(ureq::Agent::config_builder().build());
        let (p, u2) = (plain.clone(), url.clone());
        let (tx, rx) = stdmpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(p.get(format!("{u2}/hang")).call().is_err());
        });
        sleep(50 * MS); // both wait for their answer
        plain.shutdown();
        let t = Instant::now();
        let reference = loop {
            match rx.try_recv() {
                Ok(r) => break Some(r),
                Err(_) if t.elapsed() > Duration::from_millis(500) => break None,
                Err(_) => sleep(MS),
            }
        };
        assert_eq!(reference, Some(true), "plain ureq was not interrupted");
        let t = Instant::now();
        agent.clone().shutdown();
        let done = g.wait(Some(Duration::from_millis(500)));
        let waited = t.elapsed();
        if !done {
            g.kill();
        }
        assert!(
            done,
            "the request in flight was not interrupted by Agent::shutdown ({waited:?})"
        );
        let (r, _) = g.join().unwrap();
        assert!(matches!(r, Err(ureq::Error::Io(_))), "{r:?}");
        // and new requests fail with NotConnected
        let e = agent.get(format!("{url}/ok")).call().unwrap_err();
        assert!(matches!(e, ureq::Error::Io(ref io) if io.kind() == io::ErrorKind::NotConnected));
        server.stop(Some(Duration::ZERO));
    });
}

// ================================================= ureq: names and families

// Host names go through sylvan's off-thread resolver: "localhost" works
// (and later requests hit the cache and the pooled connection).
#[test]
fn u23_localhost_by_name() {
    bounded(|| {
        let (server, url, _) = serve(hello);
        let port = server.local_addr().unwrap().port();
        let agent = agent();
        for i in 0..3 {
            let answer = get_text(&agent, &format!("http://localhost:{port}/n{i}")).unwrap();
            assert!(answer.starts_with(&format!("/n{i} ")), "{answer}");
        }
        assert_eq!(server.accepted(), 1, "{url}");
        server.stop(Some(Duration::ZERO));
    });
}

// An unresolvable name (RFC 2606 ".invalid") fails promptly with an error
// that is not a timeout and names the host (as socket.gaierror does).
#[test]
fn u24_unresolvable_host_is_a_clear_error() {
    if !crate::util::bad_host_fails_fast() {
        return;
    }
    bounded(|| {
        let agent = agent();
        let t = Instant::now();
        let e = agent
            .get("http://no-such-host.invalid/")
            .call()
            .unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(3));
        match &e {
            ureq::Error::HostNotFound => {}
            ureq::Error::Io(io) => {
                assert!(io.to_string().contains("no-such-host.invalid"), "{io}")
            }
            other => panic!("{other:?}"),
        }
        // failures are not cached as successes: a second try fails the same way
        assert!(agent.get("http://no-such-host.invalid/").call().is_err());
    });
}

// IPv6 loopback: a bracketed literal URL reaches a server bound on [::1].
#[test]
fn u25_ipv6_loopback_literal() {
    bounded(|| {
        if std::net::TcpListener::bind("[::1]:0").is_err() {
            eprintln!("no IPv6 loopback: skipped");
            return;
        }
        let (server, url, _) = serve_on("[::1]:0", hello);
        assert!(url.starts_with("http://[::1]:"), "{url}");
        let agent = agent();
        let a = get_text(&agent, &format!("{url}/six")).unwrap();
        let b = get_text(&agent, &format!("{url}/six2")).unwrap();
        assert!(a.starts_with("/six ") && b.ends_with(" 2"), "{a} / {b}");
        server.stop(Some(Duration::ZERO));
    });
}

// ==================================================== ureq: other threads

/// A blocking HTTP server on its own OS thread (std sockets, one thread per
/// connection): answers "hello" to every request, keeps connections alive.
/// Returns the address and a counter of connections the client closed.
fn std_thread_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let closed = Arc::new(AtomicUsize::new(0));
    let c2 = closed.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let closed = c2.clone();
            std::thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
                let mut r = std::io::BufReader::new(s.try_clone().unwrap());
                let mut w = s;
                let mut n = 0;
                loop {
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        match r.read_line(&mut line) {
                            Ok(0) | Err(_) => {
                                closed.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                            Ok(_) => {}
                        }
                        if line == "\r\n" {
                            break;
                        }
                        head.push_str(&line);
                    }
                    n += 1;
                    let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                    let body = format!("{path} {n}");
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if w.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, closed)
}

// One agent per hub (the documented rule): two OS threads, each with its
// own hub and agent and many greenlets, against a server on a third thread.
#[test]
fn u26_one_agent_per_hub_on_two_threads() {
    let (addr, _) = std_thread_server();
    let (tx, rx) = stdmpsc::channel();
    for t in 0..2 {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let r = with_timeout(Duration::from_secs(6), || {
                let agent = agent();
                let gs: Vec<_> = (0..10)
                    .map(|g| {
                        let agent = agent.clone();
                        spawn(move || {
                            (0..5)
                                .map(|i| {
                                    let path = format!("/t{t}g{g}i{i}");
                                    let a =
                                        get_text(&agent, &format!("http://{addr}{path}")).unwrap();
                                    a.starts_with(&format!("{path} "))
                                })
                                .filter(|ok| *ok)
                                .count()
                        })
                    })
                    .collect();
                gs.into_iter().map(|g| g.join().unwrap()).sum::<usize>()
            });
            let _ = tx.send(r.ok());
        });
    }
    for _ in 0..2 {
        let got = rx
            .recv_timeout(Duration::from_secs(8))
            .expect("HANG: a hub thread");
        assert_eq!(got, Some(50));
    }
}

/// Makes a request on a fresh agent on this hub (so a connection sits in
/// its pool), then uses a clone of the agent from another OS thread.
/// Returns the agent, the URL, and the other thread's panic message (or
/// `None` if its request did not panic).
fn use_from_another_thread() -> (ureq::Agent, String, StreamServer, Option<String>) {
    let (server, url, _) = serve(hello);
    let agent = agent();
    get_text(&agent, &format!("{url}/first")).unwrap();
    let (a, u) = (agent.clone(), url.clone());
    let (tx, rx) = stdmpsc::channel();
    std::thread::spawn(move || {
        let r = catch_unwind(AssertUnwindSafe(|| {
            let _ = get_text(&a, &format!("{u}/elsewhere"));
        }));
        let _ = tx.send(r.err().map(|p| sylvan::runtime::payload_message(&*p)));
    });
    let msg = loop {
        // the other thread may send the connection home to this hub: keep
        // the hub turning while waiting
        match rx.try_recv() {
            Ok(m) => break m,
            Err(stdmpsc::TryRecvError::Empty) => sleep(MS),
            Err(e) => panic!("{e}"),
        }
    };
    (agent, url, server, msg)
}

// The module docs: a connection used off its hub's thread panics "with a
// message saying so" (not undefined behaviour, not a hang).
#[test]
fn u27_agent_used_from_another_thread_panics_with_a_clear_message() {
    bounded(|| {
        let (_agent, _url, server, msg) = use_from_another_thread();
        let msg = msg.expect("using a pooled connection off its hub did not panic");
        assert!(
            msg.contains("sylvan::ureq") && msg.contains("one ureq Agent per hub"),
            "{msg}"
        );
        server.stop(Some(Duration::ZERO));
    });
}

// After that misuse, the owner thread's agent must go on working (the
// clear panic is the whole penalty). The panic is raised inside ureq's
// pool lock (Transport::is_open is called under it), which poisons the
// agent's pool mutex: every later request of the owner panics with a
// PoisonError instead.
#[test]
fn u28_owner_agent_still_works_after_a_wrong_thread_use() {
    bounded(|| {
        let (agent, url, server, msg) = use_from_another_thread();
        assert!(msg.is_some());
        let r = catch_unwind(AssertUnwindSafe(|| {
            get_text(&agent, &format!("{url}/again"))
        }));
        match r {
            Ok(Ok(answer)) => assert!(answer.starts_with("/again "), "{answer}"),
            Ok(Err(e)) => panic!("owner's request failed: {e:?}"),
            Err(p) => panic!(
                "owner's request panicked: {}",
                sylvan::runtime::payload_message(&*p)
            ),
        }
        server.stop(Some(Duration::ZERO));
    });
}

// The module docs: "If the agent (and with it a pooled connection) is
// dropped on another thread, the socket is sent back to its hub to be
// closed there." The server sees the connection close.
#[test]
fn u29_agent_dropped_on_another_thread_closes_its_socket_on_the_owner_hub() {
    bounded(|| {
        let (server, url, stats) = serve(hello);
        let agent = agent();
        get_text(&agent, &format!("{url}/pooled")).unwrap();
        assert_eq!(stats.closed.get(), 0);
        let th = std::thread::spawn(move || drop(agent));
        yield_until("socket closed on its hub", || stats.closed.get() == 1);
        th.join().unwrap();
        server.stop(Some(Duration::ZERO));
    });
}

// A response whose body is read on another OS thread: a clear panic there
// (the connection belongs to this hub), and the connection is sent home
// and closed.
#[test]
fn u30_response_body_read_on_another_thread_panics_clearly() {
    bounded(|| {
        let (server, url, stats) =
            serve(|req, c| respond(c, &[b'b'; 50_000], "").is_ok() && req.n < 10);
        let agent = agent();
        let res = agent.get(format!("{url}/body")).call().unwrap();
        let (tx, rx) = stdmpsc::channel();
        std::thread::spawn(move || {
            let r = catch_unwind(AssertUnwindSafe(move || {
                let mut res = res;
                res.body_mut().read_to_vec().map(|v| v.len())
            }));
            let _ = tx.send(r.map_err(|p| sylvan::runtime::payload_message(&*p)));
        });
        let r = loop {
            match rx.try_recv() {
                Ok(r) => break r,
                Err(_) => sleep(MS),
            }
        };
        match r {
            Err(msg) => assert!(msg.contains("one ureq Agent per hub"), "{msg}"),
            // the whole body may already have been buffered with the head:
            // then no socket was touched, which is fine too
            Ok(n) => assert_eq!(n.unwrap(), 50_000),
        }
        yield_until("connection closed on its hub", || stats.closed.get() == 1);
        server.stop(Some(Duration::ZERO));
    });
}

// ============================================================ threads layer

// spawn_blocking docs: "Called while the caller is already unwinding (from
// a destructor), f runs inline on the calling thread, since a greenlet
// never switches out while it unwinds." A killed greenlet's destructor that
// calls spawn_blocking gets its value.
#[test]
fn t01_spawn_blocking_from_a_destructor_during_kill_runs_inline() {
    struct Cleanup(Rc<RefCell<Option<(String, u32)>>>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let v = spawn_blocking(|| {
                let name = std::thread::current().name().unwrap_or("").to_owned();
                (name, 41 + 1)
            });
            let (name, n) = v;
            *self.0.borrow_mut() = Some((name, n - 1));
        }
    }
    bounded(|| {
        let slot = Rc::new(RefCell::new(None));
        let s = slot.clone();
        let g = spawn(move || {
            let _c = Cleanup(s);
            sleep(Duration::from_secs(10));
        });
        yield_now();
        g.kill();
        assert!(g.join().unwrap_err().is_killed());
        let (name, n) = slot.borrow_mut().take().expect("destructor ran");
        assert_eq!(n, 41);
        assert_ne!(name, "sylvan-blocking", "ran on the pool, not inline");
    });
}

// gevent.threadpool: a job may itself use the pool (apply from within a
// worker); nested spawn_blocking from a pool thread gives its value.
#[test]
fn t02_nested_spawn_blocking_from_a_pool_job() {
    bounded(|| {
        let gs: Vec<_> = (0..4u32)
            .map(|i| spawn(move || spawn_blocking(move || spawn_blocking(move || i * 10) + 1)))
            .collect();
        let got: Vec<u32> = gs.into_iter().map(|g| g.join().unwrap()).collect();
        assert_eq!(got, [1, 11, 21, 31]);
    });
}

// The pattern of progress callbacks: a pool job hands work back to the
// hub through a Handle (gevent's hub.loop.run_callback_threadsafe) while
// its caller is parked waiting for it; the hub runs those greenlets
// meanwhile. Both a greenlet and main as the waiting caller.
#[test]
fn t03_pool_job_hands_work_back_to_the_hub_while_its_caller_waits() {
    bounded(|| {
        let seen = Rc::new(Cell::new(0u32));
        thread_local! { static SEEN: RefCell<Option<Rc<Cell<u32>>>> = const { RefCell::new(None) }; }
        SEEN.with(|s| *s.borrow_mut() = Some(seen.clone()));
        let job = |handle: Handle| {
            move || {
                let (ack_tx, ack_rx) = stdmpsc::channel::<u32>();
                for i in 0..5u32 {
                    let ack = ack_tx.clone();
                    handle
                        .spawn(move || {
                            SEEN.with(|s| {
                                let c = s.borrow().clone().unwrap();
                                c.set(c.get() + 1)
                            });
                            ack.send(i).unwrap();
                        })
                        .unwrap();
                }
                // wait for the hub to have run all five
                (0..5)
                    .map(|_| ack_rx.recv_timeout(Duration::from_secs(3)).ok())
                    .collect::<Option<Vec<u32>>>()
            }
        };
        let h = Handle::current();
        let g = spawn(move || spawn_blocking(job(h)));
        let acks = g
            .join()
            .unwrap()
            .expect("the hub ran the handle's greenlets");
        assert_eq!(acks, [0, 1, 2, 3, 4]);
        // main itself parked in spawn_blocking
        let acks = spawn_blocking(job(Handle::current())).expect("main's hub ran them");
        assert_eq!(acks, [0, 1, 2, 3, 4]);
        assert_eq!(seen.get(), 10);
    });
}

// gevent.Timeout around a threadpool wait: the job's late completion must
// not wake the greenlet from whatever it parks on next (a sleep is not cut
// short).
#[test]
fn t04_late_completion_of_an_abandoned_job_does_not_cut_a_later_sleep() {
    bounded(|| {
        let g = spawn(|| {
            let r = with_timeout(Duration::from_millis(20), || {
                spawn_blocking(|| std::thread::sleep(Duration::from_millis(80)))
            });
            assert!(r.is_err());
            let t = Instant::now();
            sleep(Duration::from_millis(200)); // the job finishes at ~80 ms
            t.elapsed()
        });
        let slept = g.join().unwrap();
        assert!(
            slept >= Duration::from_millis(195),
            "sleep cut short: {slept:?}"
        );
    });
}

// gevent.threadpool with killed waiters: the waiters die at once, each job
// a thread had started still runs and its result is dropped (no leak), the
// queued ones never run (gevent's waiters for a free worker never submit
// theirs), and the hub and pool are healthy for the next batch.
#[test]
fn t05_killing_many_waiters_drops_results_and_leaves_the_pool_healthy() {
    #[derive(Debug)]
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    bounded(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let gs: Vec<_> = (0..60)
            .map(|_| {
                let (d, s) = (drops.clone(), started.clone());
                spawn(move || {
                    spawn_blocking(move || {
                        s.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(30));
                        Counted(d)
                    })
                })
            })
            .collect();
        sleep(5 * MS);
        let t = Instant::now();
        assert!(sylvan::killall(&gs, Some(Duration::from_millis(500))).is_ok());
        assert!(
            t.elapsed() < Duration::from_millis(400),
            "{:?}",
            t.elapsed()
        );
        for g in gs {
            assert!(g.join().unwrap_err().is_killed());
        }
        // the next batch works and its results are right
        let gs: Vec<_> = (0..60u64)
            .map(|i| spawn(move || spawn_blocking(move || i * i)))
            .collect();
        for (i, g) in gs.into_iter().enumerate() {
            assert_eq!(g.join().unwrap(), (i * i) as u64);
        }
        // Jobs a thread had started when their callers were killed run on
        // and their results are dropped; the queued ones never run.
        // (Looked at twice, a job's 30 ms apart: one a thread took just
        // before its caller's kill may count its start late.)
        let t = Instant::now();
        let mut settled = 0;
        while settled < 2 && t.elapsed() < Duration::from_secs(3) {
            sleep(if settled == 0 { 5 * MS } else { 40 * MS });
            let caught_up = drops.load(Ordering::SeqCst) == started.load(Ordering::SeqCst);
            settled = if caught_up { settled + 1 } else { 0 };
        }
        let started = started.load(Ordering::SeqCst);
        assert!(started <= sylvan::blocking_threads(), "{started} jobs ran");
        assert_eq!(
            drops.load(Ordering::SeqCst),
            started,
            "abandoned results dropped"
        );
    });
}

// Handle::spawn called on the hub's own thread (from a greenlet) does not
// run the closure inline: it is queued like any cross-thread spawn, and
// runs after the caller blocks.
#[test]
fn t06_handle_spawn_from_the_hubs_own_thread_is_deferred() {
    bounded(|| {
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let g = spawn(move || {
            let h = Handle::current();
            let r2 = r.clone();
            h.spawn(move || {
                r2.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
            r.load(Ordering::SeqCst)
        });
        assert_eq!(g.join().unwrap(), 0, "ran inline inside Handle::spawn");
        yield_until("handle spawn ran", || ran.load(Ordering::SeqCst) == 1);
    });
}

// The Send channel across hubs: the receiver parks main on hub B, the
// senders are greenlets on hub A (each yielding between sends) and a plain
// thread. Every value arrives, in per-sender order.
#[test]
fn t07_mpsc_between_two_hubs_and_a_plain_thread() {
    let (tx, rx) = sylvan::mpsc::channel::<(u32, u32)>();
    let (done_tx, done_rx) = stdmpsc::channel();
    let b = std::thread::spawn(move || {
        let r = with_timeout(Duration::from_secs(5), move || {
            let mut last = [None::<u32>; 11];
            let mut n = 0;
            for (s, i) in rx.iter() {
                let prev = last[s as usize].replace(i);
                assert_eq!(prev.map_or(0, |p| p + 1), i, "order from sender {s}");
                n += 1;
            }
            n
        });
        let _ = done_tx.send(r.ok());
    });
    let plain_tx = tx.clone();
    let plain = std::thread::spawn(move || {
        for i in 0..100 {
            plain_tx.send((10, i)).unwrap();
        }
    });
    bounded(move || {
        let gs: Vec<_> = (0..10u32)
            .map(|s| {
                let tx = tx.clone();
                spawn(move || {
                    for i in 0..100 {
                        tx.send((s, i)).unwrap();
                        if i % 10 == 0 {
                            yield_now();
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        for g in gs {
            g.join().unwrap();
        }
    });
    plain.join().unwrap();
    let got = done_rx
        .recv_timeout(Duration::from_secs(6))
        .expect("HANG: the receiving hub");
    assert_eq!(got, Some(1100));
    b.join().unwrap();
}

// Off-thread name resolution (gevent's threaded resolver): many greenlets
// resolving at once each get the right answer, and the hub keeps running
// others meanwhile.
#[test]
fn t08_concurrent_name_lookups_park_only_their_greenlets() {
    bounded(|| {
        let (tick, stop) = ticker();
        let gs: Vec<_> = (0..50u16)
            .map(|i| spawn(move || sylvan::net::lookup_host(("localhost", 2000 + i))))
            .collect();
        for (i, g) in gs.into_iter().enumerate() {
            let addrs = g.join().unwrap().unwrap();
            assert!(!addrs.is_empty());
            assert!(
                addrs
                    .iter()
                    .all(|a| a.ip().is_loopback() && a.port() == 2000 + i as u16),
                "{addrs:?}"
            );
        }
        stop.set(true);
        tick.join().unwrap();
        // an unresolvable name: NotFound or the resolver's error, naming it
        if crate::util::bad_host_fails_fast() {
            let e = sylvan::net::lookup_host(("no-such-host.invalid", 80)).unwrap_err();
            assert!(e.to_string().contains("no-such-host.invalid"), "{e}");
        }
    });
}

// gevent.threadpool re-raises the job's exception in the waiting greenlet;
// sylvan resumes the panic in the caller. A caller greenlet that catches it
// (catch_unwind) goes on using the pool, and a non-string payload keeps
// its type through a greenlet.
#[test]
fn t09_job_panic_caught_in_the_greenlet_then_pool_reused() {
    quiet();
    bounded(|| {
        let g = spawn(|| {
            let r = catch_unwind(|| spawn_blocking(|| std::panic::panic_any(7u64)));
            let payload = r.unwrap_err();
            let v = *payload.downcast_ref::<u64>().expect("payload type kept");
            v + spawn_blocking(|| 1u64)
        });
        assert_eq!(g.join().unwrap(), 8);
    });
}

// A Handle keeps working across a burst from several threads while the
// hub is busy with socket IO (a ureq request in flight): handle-spawned
// greenlets interleave with the request rather than waiting for it.
#[test]
fn t10_handle_spawns_run_while_a_request_is_in_flight() {
    bounded(|| {
        let (server, url, _) = serve(|req, c| {
            sleep(Duration::from_millis(150));
            hello(req, c)
        });
        let agent = agent();
        let ran = Arc::new(AtomicUsize::new(0));
        let finished_at = Arc::new(Mutex::new(None::<Instant>));
        let h = Handle::current();
        let keep = h.keep_alive();
        let (r, f) = (ran.clone(), finished_at.clone());
        let th = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            for _ in 0..100 {
                let (r, f) = (r.clone(), f.clone());
                h.spawn(move || {
                    if r.fetch_add(1, Ordering::SeqCst) == 99 {
                        *f.lock().unwrap() = Some(Instant::now());
                    }
                })
                .unwrap();
            }
            drop(keep);
        });
        let answer = get_text(&agent, &format!("{url}/slow")).unwrap();
        let request_done = Instant::now();
        th.join().unwrap();
        assert!(answer.starts_with("/slow "));
        assert_eq!(ran.load(Ordering::SeqCst), 100);
        let all_ran = finished_at.lock().unwrap().expect("all ran");
        assert!(
            all_ran < request_done,
            "handle spawns waited for the request"
        );
        server.stop(Some(Duration::ZERO));
    });
}

// The ureq resolver runs on the blocking pool and the agent is usable from
// main and greenlets alike: a request from main while greenlets hold
// other connections of the same agent (pool shared between greenlets).
#[test]
fn t11_agent_shared_by_main_and_greenlets_with_drop_flags() {
    bounded(|| {
        let (server, url, _) = serve(|req, c| {
            sleep(3 * MS);
            hello(req, c)
        });
        let port = server.local_addr().unwrap().port();
        let agent = agent();
        let drops = Rc::new(Cell::new(0));
        let gs: Vec<_> = (0..8)
            .map(|i| {
                let (a, d) = (agent.clone(), drops.clone());
                spawn(move || {
                    let _flag = DropFlag(d);
                    get_text(&a, &format!("http://localhost:{port}/g{i}")).unwrap()
                })
            })
            .collect();
        let mine = get_text(&agent, &format!("{url}/main")).unwrap();
        assert!(mine.starts_with("/main "));
        for (i, g) in gs.into_iter().enumerate() {
            assert!(g.join().unwrap().starts_with(&format!("/g{i} ")));
        }
        assert_eq!(drops.get(), 8);
        server.stop(Some(Duration::ZERO));
    });
}

// timeout_per_write over a sylvan socket (gevent's sendall with a socket
// timeout): a POST to a server that never reads times out on time with a
// Timeout error, and the agent works afterwards.
#[test]
fn u31_write_timeout_on_a_server_that_never_reads() {
    bounded(|| {
        let gone = Rc::new(Cell::new(0));
        let g = gone.clone();
        let (server, url, _) = serve_raw(move |c| {
            // never reads: wait (without reading) until the client resets
            sleep(Duration::from_millis(1500));
            drop(c);
            g.set(g.get() + 1);
        });
        let agent = agent_with(|b| b.timeout_per_write(Some(Duration::from_millis(150))));
        let body = vec![b'w'; 32 << 20];
        let t = Instant::now();
        let e = agent.post(format!("{url}/up")).send(&body[..]).unwrap_err();
        let took = t.elapsed();
        assert!(matches!(e, ureq::Error::Timeout(_)), "{e:?}");
        assert!(
            took >= Duration::from_millis(140) && took < Duration::from_secs(1),
            "{took:?}"
        );
        let (ok, ok_url, _) = serve(hello);
        assert!(get_text(&agent, &format!("{ok_url}/after")).is_ok());
        ok.stop(Some(Duration::from_secs(1)));
        server.stop(Some(Duration::from_millis(10)));
    });
}

/// A server whose handler gets the raw connection (for peers that do not
/// speak HTTP properly).
fn serve_raw(handle: impl Fn(TcpStream) + 'static) -> (StreamServer, String, ()) {
    let server = StreamServer::bind("127.0.0.1:0", move |c: TcpStream, _| handle(c))
        .unwrap()
        .start()
        .unwrap();
    let url = format!("http://{}", server.local_addr().unwrap());
    (server, url, ())
}

// A close-delimited body (HTTP/1.0 style: no Content-Length, no chunking,
// the server closes): read to the end, and the connection is not pooled.
#[test]
fn u32_close_delimited_body_read_to_eof() {
    bounded(|| {
        let body: Vec<u8> = (0..150_000u32).map(|i| (i % 241) as u8).collect();
        let b2 = body.clone();
        let (server, url, _) = serve_raw(move |c| {
            let mut r = BufReader::new(&c);
            if read_request(&mut r).is_none() {
                return;
            }
            let mut w = &c;
            w.write_all(b"HTTP/1.0 200 OK\r\n\r\n").unwrap();
            for piece in b2.chunks(10_000) {
                w.write_all(piece).unwrap();
                yield_now();
            }
        });
        let agent = agent();
        let got = agent
            .get(format!("{url}/old"))
            .call()
            .unwrap()
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .unwrap();
        assert!(got == body, "close-delimited body: {} bytes", got.len());
        let again = agent.get(format!("{url}/old")).call().unwrap();
        drop(again);
        assert_eq!(server.accepted(), 2);
        server.stop(Some(Duration::ZERO));
    });
}

// Redirects (ureq follows them, as requests does under gevent): from one
// sylvan server to another, with the pooled connections of both reused.
#[test]
fn u33_redirect_to_another_server_and_back() {
    bounded(|| {
        let (target, target_url, _) = serve(hello);
        let t = target_url.clone();
        let (origin, origin_url, _) = serve(move |req, c| {
            if req.path == "/go" {
                let loc = format!("Location: {t}/landed\r\n");
                let mut w = c;
                w.write_all(
                    format!("HTTP/1.1 302 Found\r\nContent-Length: 0\r\n{loc}\r\n").as_bytes(),
                )
                .is_ok()
            } else {
                hello(req, c)
            }
        });
        let agent = agent();
        for i in 1..=3 {
            let answer = get_text(&agent, &format!("{origin_url}/go")).unwrap();
            assert!(answer.starts_with("/landed "), "{answer}");
            assert!(answer.ends_with(&format!(" {i}")), "kept alive: {answer}");
        }
        assert_eq!(origin.accepted(), 1);
        assert_eq!(target.accepted(), 1);
        origin.stop(Some(Duration::from_secs(1)));
        target.stop(Some(Duration::from_secs(1)));
    });
}

// The module docs: an agent dropped on another thread after its hub is
// gone leaks the socket ("it cannot be dropped safely on any other
// thread"): no crash, no hang, no panic in the dropping thread.
#[test]
fn u34_agent_outliving_its_hub_thread_drops_quietly() {
    let (addr, closed) = std_thread_server();
    let (tx, rx) = stdmpsc::channel();
    let th = std::thread::spawn(move || {
        let agent = agent();
        let r = bounded(|| get_text(&agent, &format!("http://{addr}/x")));
        tx.send((agent, r.is_ok())).unwrap();
    });
    let (agent, ok) = rx.recv_timeout(Duration::from_secs(5)).expect("HANG");
    assert!(ok);
    th.join().unwrap();
    let t = Instant::now();
    let r = catch_unwind(AssertUnwindSafe(move || drop(agent)));
    assert!(r.is_ok(), "dropping the agent panicked");
    assert!(t.elapsed() < Duration::from_secs(1));
    // the leaked socket stays open: the server has not seen it close
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(closed.load(Ordering::SeqCst), 0);
}

// https through ureq's rustls connector chained after sylvan's: a peer
// that does not speak TLS fails the request promptly with an error (no
// hang), and the agent then works for plain http.
#[test]
fn u35_https_to_a_plain_http_peer_fails_promptly() {
    bounded(|| {
        let (server, url, _) = serve(hello);
        let https = url.replacen("http://", "https://", 1);
        let agent = agent_with(|b| b.timeout_global(Some(Duration::from_secs(2))));
        let t = Instant::now();
        let e = agent.get(format!("{https}/tls")).call().unwrap_err();
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "{e:?} after {:?}",
            t.elapsed()
        );
        assert!(!matches!(e, ureq::Error::Timeout(_)), "{e:?}");
        assert!(get_text(&agent, &format!("{url}/plain")).is_ok());
        server.stop(Some(Duration::ZERO));
    });
}

// A TLS handshake to a silent peer is bounded by ureq's timeout (the TLS
// layer reads through sylvan's transport, which honours the deadline) and
// parks only its greenlet.
#[test]
fn u36_https_handshake_to_a_silent_peer_times_out() {
    bounded(|| {
        let (server, url, gone) = {
            let gone = Rc::new(Cell::new(0));
            let g = gone.clone();
            let (s, u, _) = serve_raw(move |c| wait_for_client_close(&c, &g));
            (s, u, gone)
        };
        let https = url.replacen("http://", "https://", 1);
        let agent = agent_with(|b| b.timeout_global(Some(Duration::from_millis(150))));
        let (tick, stop) = ticker();
        let t = Instant::now();
        let e = agent.get(format!("{https}/")).call().unwrap_err();
        let took = t.elapsed();
        stop.set(true);
        assert!(tick.join().unwrap() >= 10, "hub stalled in the handshake");
        assert!(matches!(e, ureq::Error::Timeout(_)), "{e:?}");
        assert!(
            took >= Duration::from_millis(140) && took < Duration::from_secs(1),
            "{took:?}"
        );
        yield_until("handshake socket closed", || gone.get() == 1);
        server.stop(Some(Duration::ZERO));
    });
}

// ureq keeps at most max_idle_connections_per_host (default 3) idle
// connections: after a concurrent burst of 10, the 7 surplus connections
// are closed at once on this hub (the server sees them close), not held.
#[test]
fn u37_surplus_idle_connections_are_closed_after_a_burst() {
    bounded(|| {
        let (server, url, stats) = serve(|req, c| {
            sleep(10 * MS);
            hello(req, c)
        });
        let agent = agent();
        let gs: Vec<_> = (0..10)
            .map(|i| {
                let (a, u) = (agent.clone(), url.clone());
                spawn(move || get_text(&a, &format!("{u}/b{i}")).unwrap())
            })
            .collect();
        for g in gs {
            g.join().unwrap();
        }
        assert_eq!(server.accepted(), 10);
        yield_until("7 surplus connections closed", || stats.closed.get() == 7);
        sleep(5 * MS);
        assert_eq!(stats.closed.get(), 7, "more than the surplus closed");
        drop(agent);
        yield_until("all closed", || stats.closed.get() == 10);
        server.stop(Some(Duration::ZERO));
    });
}

// A connect abandoned by gevent.Timeout (with_timeout) while it waits on a
// full backlog: the greenlet unwinds at the deadline and the agent works
// for the next request.
#[test]
fn u38_with_timeout_during_a_hanging_connect() {
    bounded(|| {
        let (_l, addr, fill) = crate::net::full_backlog_listener();
        if fill.is_empty() {
            eprintln!("backlog not filled here: skipped");
            return;
        }
        let agent = agent();
        let a = agent.clone();
        let t = Instant::now();
        let r = with_timeout(Duration::from_millis(80), move || {
            a.get(format!("http://{addr}/")).call().map(|_| ())
        });
        assert!(r.is_err());
        assert!(
            t.elapsed() < Duration::from_millis(800),
            "{:?}",
            t.elapsed()
        );
        let (server, url, _) = serve(hello);
        assert!(get_text(&agent, &format!("{url}/next")).is_ok());
        server.stop(Some(Duration::ZERO));
    });
}

// A sylvan ureq agent created and used inside a blocking-pool job (code
// that fetches from a pool thread): it gets that thread's own hub, and the
// request (and its resolver's nested pool call for "localhost") completes.
#[test]
fn t12_ureq_inside_a_spawn_blocking_job_with_its_own_agent() {
    let (addr, _) = std_thread_server();
    let r = bounded(|| {
        spawn_blocking(move || {
            let agent = agent();
            let a = get_text(&agent, &format!("http://localhost:{}/pool", addr.port()));
            let b = get_text(&agent, &format!("http://{addr}/pool2"));
            (a.map_err(|e| e.to_string()), b.map_err(|e| e.to_string()))
        })
    });
    assert_eq!(r.0.as_deref(), Ok("/pool 1"));
    assert!(
        r.1.as_deref().is_ok_and(|s| s.starts_with("/pool2 ")),
        "{r:?}"
    );
}

thread_local! {
    static TLS_AGENT: RefCell<Option<ureq::Agent>> = const { RefCell::new(None) };
}

/// On a fresh thread: a request whose connection stays pooled in an agent
/// kept in a thread-local, whose slot is registered before (`agent_first`)
/// or after the thread's hub exists. Returns how the thread ended.
fn agent_in_a_thread_local(agent_first: bool, addr: SocketAddr) -> Result<bool, String> {
    let th = std::thread::spawn(move || {
        if agent_first {
            TLS_AGENT.with(|a| a.borrow_mut().take());
        }
        let agent = agent();
        let ok = get_text(&agent, &format!("http://{addr}/tls")).is_ok();
        TLS_AGENT.with(|a| *a.borrow_mut() = Some(agent));
        ok
    });
    th.join().map_err(|p| sylvan::runtime::payload_message(&*p))
}

// DESIGN ("Limits to know"): at thread exit the hub is torn down from a
// thread-local destructor, where other thread-locals may already be gone
// or still alive. An agent kept in a thread-local (a common way to get
// "one agent per hub") is dropped before or after the hub: either way the
// thread ends cleanly (no panic, no abort) and the pooled socket is closed.
// Run in a child process: an abort must not take the test binary down.
#[test]
fn u39_agent_in_a_thread_local_at_thread_exit() {
    const NAME: &str = "p4_tls_agent";
    if crate::util::is_child(NAME) {
        let (addr, closed) = std_thread_server();
        for agent_first in [false, true] {
            let r = agent_in_a_thread_local(agent_first, addr);
            println!("PROBE agent_first={agent_first} result={r:?}");
        }
        let t = Instant::now();
        while closed.load(Ordering::SeqCst) < 2 && t.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(5 * MS);
        }
        println!("PROBE closed={}", closed.load(Ordering::SeqCst));
        return;
    }
    let out = crate::util::run_child("probes4::u39_agent_in_a_thread_local_at_thread_exit", NAME);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child died: {:?}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("PROBE agent_first=false result=Ok(true)"),
        "{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("PROBE agent_first=true result=Ok(true)"),
        "{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("PROBE closed=2"),
        "pooled sockets not closed:\n{stdout}"
    );
}
