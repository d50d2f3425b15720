//! Adversarial probes, round 7: `sylvan::ureq` (keep-alive reuse, dead
//! pooled connections, timeouts, kills, concurrency, bodies, threads) and
//! `TcpStream::is_reusable`.

use std::cell::Cell;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sylvan::net::{TcpListener, TcpStream};

use crate::net_peers::{pair, set_linger_zero};
use crate::util::{bounded, quiet, yield_until};

/// What a handler tells the connection loop to do next.
#[derive(PartialEq)]
enum Next {
    /// Read the next request on this connection.
    Keep,
    /// Drop the connection (a FIN).
    Close,
}

/// A hand-written HTTP/1.1 server on a greenlet of this hub.
struct Server {
    url: String,
    accepts: Rc<Cell<usize>>,
    acceptor: sylvan::Greenlet<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.acceptor.kill_nowait();
    }
}

/// Reads a request head (and discards a `Content-Length` body); `None` at
/// end of stream or on an error.
fn read_request(s: &mut impl Read) -> Option<String> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8(head).ok()?;
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some(head)
}

fn path_of(head: &str) -> String {
    head.split_whitespace().nth(1).unwrap_or("").to_owned()
}

/// A 200 response with a `Content-Length` body.
fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves every connection with `handler(stream, connection index,
/// request index on it, request head)`.
fn server(handler: impl Fn(&mut TcpStream, usize, usize, &str) -> Next + 'static) -> Server {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let accepts = Rc::new(Cell::new(0));
    let handler = Rc::new(handler);
    let a = accepts.clone();
    let acceptor = sylvan::spawn(move || {
        loop {
            let Ok((mut s, _)) = l.accept() else { return };
            let n = a.get();
            a.set(n + 1);
            let h = handler.clone();
            sylvan::spawn(move || {
                let mut req = 0;
                while let Some(head) = read_request(&mut s) {
                    if h(&mut s, n, req, &head) == Next::Close {
                        return;
                    }
                    req += 1;
                }
            });
        }
    });
    Server {
        url,
        accepts,
        acceptor,
    }
}

/// Answers each request with its path, keeping the connection.
fn echo_server() -> Server {
    server(|s, _, _, head| {
        s.write_all(&ok(&path_of(head))).unwrap();
        Next::Keep
    })
}

fn agent() -> ureq::Agent {
    sylvan::ureq::agent(ureq::Agent::config_builder().build())
}

fn agent_with(
    f: impl FnOnce(
        ureq::config::ConfigBuilder<ureq::typestate::AgentScope>,
    ) -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope>,
) -> ureq::Agent {
    sylvan::ureq::agent(f(ureq::Agent::config_builder()).build())
}

fn get(agent: &ureq::Agent, url: &str) -> Result<String, ureq::Error> {
    agent.get(url).call()?.body_mut().read_to_string()
}

// ---------------------------------------------------------------------
// keep-alive reuse and dead pooled connections

#[test]
fn keep_alive_sequential_requests_use_one_connection() {
    bounded(|| {
        let srv = echo_server();
        let agent = agent();
        for i in 0..10 {
            assert_eq!(
                get(&agent, &format!("{}/r{i}", srv.url)).unwrap(),
                format!("/r{i}")
            );
        }
        assert_eq!(
            srv.accepts.get(),
            1,
            "ten keep-alive requests, one connection"
        );
    });
}

#[test]
fn connection_close_header_then_next_request_opens_a_new_connection() {
    bounded(|| {
        let srv = server(|s, _, _, head| {
            let body = path_of(head);
            let r = format!(
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(r.as_bytes()).unwrap();
            Next::Close
        });
        let agent = agent();
        for i in 0..5 {
            assert_eq!(
                get(&agent, &format!("{}/c{i}", srv.url)).unwrap(),
                format!("/c{i}")
            );
        }
        assert_eq!(srv.accepts.get(), 5);
    });
}

#[test]
fn server_closing_right_after_the_response_does_not_fail_the_next_request() {
    bounded(|| {
        // No `Connection: close`: the server just hangs up after answering.
        let srv = server(|s, _, _, head| {
            s.write_all(&ok(&path_of(head))).unwrap();
            Next::Close
        });
        let agent = agent();
        for i in 0..5 {
            assert_eq!(
                get(&agent, &format!("{}/x{i}", srv.url)).unwrap(),
                format!("/x{i}")
            );
        }
        assert_eq!(srv.accepts.get(), 5);
    });
}

#[test]
fn server_closing_an_idle_connection_after_a_delay_is_detected() {
    bounded(|| {
        let srv = server(|s, _, _, head| {
            s.write_all(&ok(&path_of(head))).unwrap();
            sylvan::sleep(Duration::from_millis(50));
            Next::Close
        });
        let agent = agent();
        for i in 0..3 {
            assert_eq!(
                get(&agent, &format!("{}/d{i}", srv.url)).unwrap(),
                format!("/d{i}")
            );
            // The client idles (parked) well past the server's close.
            sylvan::sleep(Duration::from_millis(300));
        }
        assert_eq!(srv.accepts.get(), 3);
    });
}

/// A server on its own OS thread (std sockets): serves the connections
/// that arrive within 3 s with `handler`; returns the accept count when
/// joined.
fn std_server(
    handler: impl Fn(&mut std::net::TcpStream, usize, &str) -> Next + Send + 'static,
) -> (String, std::thread::JoinHandle<usize>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    l.set_nonblocking(true).unwrap();
    let t = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut accepts = 0;
        let mut conns = Vec::new();
        while Instant::now() < deadline {
            match l.accept() {
                Ok((s, _)) => {
                    accepts += 1;
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                    conns.push(s);
                }
                Err(_) => {
                    // Serve what is there, one request at a time, polling.
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            let mut keep = Vec::new();
            for mut s in conns.drain(..) {
                s.set_nonblocking(true).unwrap();
                let mut b = [0u8; 1];
                let ready = matches!(s.peek(&mut b), Ok(1));
                s.set_nonblocking(false).unwrap();
                if !ready {
                    keep.push(s);
                    continue;
                }
                if let Some(head) = read_request(&mut s)
                    && handler(&mut s, accepts, &head) == Next::Keep
                {
                    keep.push(s);
                }
            }
            conns = keep;
        }
        accepts
    });
    (url, t)
}

#[test]
fn server_closing_an_idle_connection_while_the_client_is_busy_is_detected() {
    // A std-thread server closes the connection 100 ms after answering;
    // the FIN reaches the client's socket while the client greenlet
    // computes (never parks, so its hub does not poll). ureq's own std
    // transport probes the kernel in `is_open` and reconnects.
    let (closed, closed_rx) = std::sync::mpsc::channel::<()>();
    let (url, t) = std_server(move |s, _, head| {
        s.write_all(&ok(&path_of(head))).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let _ = s.shutdown(std::net::Shutdown::Both);
        let _ = closed.send(());
        Next::Close
    });
    let agent = agent();
    let first = bounded(|| get(&agent, &format!("{url}/one")));
    assert_eq!(first.unwrap(), "/one");
    // Busy, never parking, until the server has closed (a blocking wait on
    // a std channel, then a moment for the FIN to arrive).
    closed_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the server closed");
    std::thread::sleep(Duration::from_millis(50));
    let second = bounded(|| get(&agent, &format!("{url}/two")));
    let accepts = sylvan::spawn_blocking(move || t.join().unwrap());
    assert_eq!(
        second.unwrap(),
        "/two",
        "the dead pooled connection was reused"
    );
    assert_eq!(accepts, 2);
}

#[test]
fn extra_bytes_sent_with_the_response_are_not_taken_for_the_next_one() {
    bounded(|| {
        let srv = server(|s, _, _, head| {
            let mut r = ok(&path_of(head));
            r.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nbogus");
            s.write_all(&r).unwrap();
            Next::Keep
        });
        let agent = agent();
        for i in 0..3 {
            assert_eq!(
                get(&agent, &format!("{}/e{i}", srv.url)).unwrap(),
                format!("/e{i}")
            );
        }
        assert_eq!(
            srv.accepts.get(),
            3,
            "a connection with unread bytes is not reused"
        );
    });
}

#[test]
fn extra_bytes_sent_later_on_an_idle_connection_are_not_taken_for_the_next_response() {
    bounded(|| {
        let srv = server(|s, _, _, head| {
            s.write_all(&ok(&path_of(head))).unwrap();
            sylvan::sleep(Duration::from_millis(50));
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nbogus")
                .unwrap();
            Next::Keep
        });
        let agent = agent();
        for i in 0..3 {
            assert_eq!(
                get(&agent, &format!("{}/l{i}", srv.url)).unwrap(),
                format!("/l{i}")
            );
            sylvan::sleep(Duration::from_millis(300));
        }
        assert_eq!(srv.accepts.get(), 3);
    });
}

#[test]
fn server_resetting_an_idle_pooled_connection_is_detected() {
    bounded(|| {
        let srv = server(|s, _, _, head| {
            s.write_all(&ok(&path_of(head))).unwrap();
            sylvan::sleep(Duration::from_millis(50));
            set_linger_zero(s.as_raw_fd());
            Next::Close
        });
        let agent = agent();
        for i in 0..3 {
            assert_eq!(
                get(&agent, &format!("{}/z{i}", srv.url)).unwrap(),
                format!("/z{i}")
            );
            sylvan::sleep(Duration::from_millis(300));
        }
        assert_eq!(srv.accepts.get(), 3);
    });
}

#[test]
fn bodyless_responses_keep_the_connection() {
    bounded(|| {
        let srv = server(|s, _, req, head| {
            let r: &[u8] = match req % 3 {
                0 => b"HTTP/1.1 204 No Content\r\n\r\n",
                1 => b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n",
                _ => {
                    assert!(head.starts_with("HEAD "), "{head}");
                    b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
                }
            };
            s.write_all(r).unwrap();
            Next::Keep
        });
        let agent = agent();
        for _ in 0..3 {
            let mut r = agent.get(&format!("{}/a", srv.url)).call().unwrap();
            assert_eq!(r.status(), 204);
            assert_eq!(r.body_mut().read_to_string().unwrap(), "");
            let mut r = agent.get(&format!("{}/b", srv.url)).call().unwrap();
            assert_eq!(r.status(), 304);
            assert_eq!(r.body_mut().read_to_string().unwrap(), "");
            let mut r = agent.head(&format!("{}/c", srv.url)).call().unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.body_mut().read_to_string().unwrap(), "");
        }
        assert_eq!(srv.accepts.get(), 1);
    });
}

#[test]
fn responses_that_fill_the_input_buffer_exactly_keep_the_connection() {
    bounded(|| {
        // Whole responses of 16 KiB +- a little: a read fills the first
        // input buffer exactly (no short read), then comes up empty.
        let srv = server(|s, _, _, head| {
            let total: usize = path_of(head)[1..].parse().unwrap();
            let head_len = format!("HTTP/1.1 200 OK\r\nContent-Length: {:05}\r\n\r\n", 0).len();
            let body = "b".repeat(total - head_len);
            let r = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {:05}\r\n\r\n{body}",
                body.len()
            );
            assert_eq!(r.len(), total);
            s.write_all(r.as_bytes()).unwrap();
            Next::Keep
        });
        let agent = agent();
        for total in [16383usize, 16384, 16385, 32768, 65536, 16384] {
            let got = get(&agent, &format!("{}/{total}", srv.url)).unwrap();
            assert!(got.bytes().all(|b| b == b'b'));
            assert!(got.len() > total - 60 && got.len() < total);
        }
        assert_eq!(srv.accepts.get(), 1);
    });
}

#[test]
fn a_partly_read_body_is_not_reused_and_does_not_leak_into_the_next_response() {
    bounded(|| {
        let big = "q".repeat(200_000);
        let srv = server(move |s, _, _, head| {
            let p = path_of(head);
            let body = if p == "/big" { big.clone() } else { p };
            // The writer may see the reader go away: ignore that.
            let _ = s.write_all(&ok(&body));
            Next::Keep
        });
        let agent = agent();
        {
            let mut r = agent.get(&format!("{}/big", srv.url)).call().unwrap();
            let mut b = [0u8; 10];
            r.body_mut().as_reader().read_exact(&mut b).unwrap();
            assert_eq!(&b, b"qqqqqqqqqq");
        }
        assert_eq!(get(&agent, &format!("{}/next", srv.url)).unwrap(), "/next");
        assert_eq!(srv.accepts.get(), 2);
    });
}

// ---------------------------------------------------------------------
// bodies

#[test]
fn chunked_bodies_in_dribs_and_drabs_then_reuse() {
    bounded(|| {
        let srv = server(|s, _, _, head| {
            let p = path_of(head);
            s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap();
            for piece in [p.as_bytes(), b"-middle-".as_slice(), &[b'x'; 3000]] {
                let chunk = [format!("{:x}\r\n", piece.len()).as_bytes(), piece, b"\r\n"].concat();
                // Split each chunk across writes, with parks between.
                let (a, b) = chunk.split_at(chunk.len() / 2);
                s.write_all(a).unwrap();
                sylvan::sleep(Duration::from_millis(2));
                s.write_all(b).unwrap();
            }
            s.write_all(b"0\r\n\r\n").unwrap();
            Next::Keep
        });
        let agent = agent();
        for i in 0..3 {
            let got = get(&agent, &format!("{}/k{i}", srv.url)).unwrap();
            assert_eq!(got, format!("/k{i}-middle-{}", "x".repeat(3000)));
        }
        assert_eq!(srv.accepts.get(), 1);
    });
}

#[test]
fn content_length_shorter_than_sent_gives_the_declared_body_and_a_clean_next_response() {
    bounded(|| {
        let srv = server(|s, _, _, head| {
            let p = path_of(head);
            let r = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{p}TRAILING-GARBAGE",
                p.len()
            );
            s.write_all(r.as_bytes()).unwrap();
            Next::Keep
        });
        let agent = agent();
        for i in 0..3 {
            assert_eq!(
                get(&agent, &format!("{}/s{i}", srv.url)).unwrap(),
                format!("/s{i}")
            );
        }
        assert_eq!(srv.accepts.get(), 3);
    });
}

#[test]
fn content_length_longer_than_sent_then_close_is_an_error_not_a_short_body() {
    bounded(|| {
        let srv = server(|s, _, _, head| {
            if path_of(head) == "/liar" {
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..")
                    .unwrap();
                return Next::Close;
            }
            s.write_all(&ok(&path_of(head))).unwrap();
            Next::Keep
        });
        let agent = agent();
        let r = get(&agent, &format!("{}/liar", srv.url));
        assert!(r.is_err(), "a truncated body must not pass: {r:?}");
        assert_eq!(get(&agent, &format!("{}/fine", srv.url)).unwrap(), "/fine");
    });
}

#[test]
fn gzip_bodies_are_decoded_and_the_connection_reused() {
    use flate2::Compression;
    use flate2::write::GzEncoder;
    bounded(|| {
        // Compressed here, on the test thread's stack: deflate's state
        // does not fit a 256 KiB greenlet stack in a debug build.
        let bodies: Vec<Vec<u8>> = (0..6)
            .map(|i| {
                let plain = format!("/g{i}{}", "zip".repeat(5000));
                let mut e = GzEncoder::new(Vec::new(), Compression::default());
                e.write_all(plain.as_bytes()).unwrap();
                e.finish().unwrap()
            })
            .collect();
        let srv = server(move |s, _, _, head| {
            assert!(
                head.to_ascii_lowercase().contains("accept-encoding: gzip"),
                "{head}"
            );
            let i: usize = path_of(head)[2..].parse().unwrap();
            let gz = &bodies[i];
            let mut r = format!(
                "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
                gz.len()
            )
            .into_bytes();
            r.extend_from_slice(gz);
            s.write_all(&r).unwrap();
            Next::Keep
        });
        let agent = agent();
        for i in 0..3 {
            let got = get(&agent, &format!("{}/g{i}", srv.url)).unwrap();
            assert_eq!(got, format!("/g{i}{}", "zip".repeat(5000)));
        }
        // Decoded on greenlets' stacks too, as the crawler does.
        let gs: Vec<_> = (3..6)
            .map(|i| {
                let (agent, url) = (agent.clone(), format!("{}/g{i}", srv.url));
                sylvan::spawn(move || get(&agent, &url))
            })
            .collect();
        for (g, i) in gs.into_iter().zip(3..) {
            assert_eq!(
                g.join().unwrap().unwrap(),
                format!("/g{i}{}", "zip".repeat(5000))
            );
        }
    });
}

#[test]
fn post_bodies_arrive_whole_and_the_connection_is_reused() {
    bounded(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let srv = sylvan::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut sums = Vec::new();
            for _ in 0..3 {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    s.read_exact(&mut b).unwrap();
                    head.push(b[0]);
                }
                let head = String::from_utf8(head).unwrap();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length").then(|| v.trim())
                    })
                    .expect("content-length")
                    .parse()
                    .unwrap();
                let mut body = vec![0u8; len];
                s.read_exact(&mut body).unwrap();
                let sum: u64 = body.iter().map(|&b| u64::from(b)).sum();
                sums.push(sum);
                s.write_all(&ok(&sum.to_string())).unwrap();
            }
            sums
        });
        let agent = agent();
        for n in [10usize, 300_000, 1_000_000] {
            let body: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            let want: u64 = body.iter().map(|&b| u64::from(b)).sum();
            let got = agent
                .post(&url)
                .send(&body[..])
                .unwrap()
                .body_mut()
                .read_to_string()
                .unwrap();
            assert_eq!(got, want.to_string());
        }
        assert_eq!(
            srv.join().unwrap().len(),
            3,
            "three requests on one connection"
        );
    });
}

// ---------------------------------------------------------------------
// timeouts, kills, concurrency

/// A server that reads requests and never answers.
fn silent_server() -> Server {
    server(|_, _, _, _| {
        sylvan::sleep(Duration::from_secs(3600));
        Next::Close
    })
}

fn assert_timeout(r: Result<String, ureq::Error>, started: Instant, at_least: Duration) {
    let took = started.elapsed();
    assert!(matches!(r, Err(ureq::Error::Timeout(_))), "{r:?}");
    assert!(took >= at_least, "timed out early: {took:?}");
    assert!(
        took < at_least + Duration::from_millis(1500),
        "timed out late: {took:?}"
    );
}

#[test]
fn global_timeout_against_a_server_that_never_answers() {
    bounded(|| {
        let srv = silent_server();
        let agent = agent_with(|c| c.timeout_global(Some(Duration::from_millis(300))));
        let t = Instant::now();
        assert_timeout(get(&agent, &srv.url), t, Duration::from_millis(300));
    });
}

#[test]
fn recv_response_and_per_read_timeouts_against_a_silent_server() {
    bounded(|| {
        let srv = silent_server();
        let agent = agent_with(|c| c.timeout_recv_response(Some(Duration::from_millis(300))));
        let t = Instant::now();
        assert_timeout(get(&agent, &srv.url), t, Duration::from_millis(300));
        let agent = agent_with(|c| c.timeout_per_read(Some(Duration::from_millis(300))));
        let t = Instant::now();
        assert_timeout(get(&agent, &srv.url), t, Duration::from_millis(300));
    });
}

#[test]
fn global_timeout_when_the_body_stalls_after_the_headers() {
    bounded(|| {
        let srv = server(|s, _, _, _| {
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nstart")
                .unwrap();
            sylvan::sleep(Duration::from_secs(3600));
            Next::Close
        });
        let agent = agent_with(|c| c.timeout_global(Some(Duration::from_millis(400))));
        let t = Instant::now();
        let mut r = agent.get(&srv.url).call().unwrap();
        let body = r.body_mut().read_to_string();
        let took = t.elapsed();
        assert!(matches!(body, Err(ureq::Error::Timeout(_))), "{body:?}");
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_millis(1900),
            "{took:?}"
        );
    });
}

#[test]
fn a_body_dripping_one_byte_per_50ms_hits_the_global_and_recv_body_timeouts() {
    bounded(|| {
        let srv = server(|s, _, _, _| {
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n")
                .unwrap();
            for _ in 0..200 {
                sylvan::sleep(Duration::from_millis(50));
                if s.write_all(b".").is_err() {
                    break;
                }
            }
            Next::Close
        });
        // Each read gets a byte well within any per-read bound: only the
        // overall budgets can end this.
        for agent in [
            agent_with(|c| c.timeout_global(Some(Duration::from_millis(500)))),
            agent_with(|c| {
                c.timeout_recv_body(Some(Duration::from_millis(500)))
                    .timeout_per_read(Some(Duration::from_millis(400)))
            }),
        ] {
            let t = Instant::now();
            let r = get(&agent, &srv.url);
            assert_timeout(r, t, Duration::from_millis(500));
        }
    });
}

#[test]
fn with_timeout_around_a_call_then_the_agent_still_works() {
    bounded(|| {
        let silent = silent_server();
        let good = echo_server();
        let agent = agent();
        assert_eq!(get(&agent, &format!("{}/warm", good.url)).unwrap(), "/warm");
        let r = sylvan::with_timeout(Duration::from_millis(200), || get(&agent, &silent.url));
        assert!(r.is_err(), "{r:?}");
        for i in 0..3 {
            assert_eq!(
                get(&agent, &format!("{}/after{i}", good.url)).unwrap(),
                format!("/after{i}")
            );
        }
        assert_eq!(good.accepts.get(), 1, "the pooled connection survived");
    });
}

#[test]
fn killing_a_greenlet_blocked_in_a_call_unwinds_and_closes_its_connection() {
    bounded(|| {
        quiet();
        let seen_eof = Rc::new(Cell::new(false));
        let asked = Rc::new(Cell::new(false));
        let (eof, ask) = (seen_eof.clone(), asked.clone());
        let stall = server(move |s, _, _, _| {
            ask.set(true);
            // Waits for the killed client's connection to close.
            let mut b = [0u8; 16];
            if let Ok(0) = s.read(&mut b) {
                eof.set(true);
            }
            Next::Close
        });
        let good = echo_server();
        let agent = agent();
        let flag = Rc::new(Cell::new(0));
        let g = {
            let agent = agent.clone();
            let url = stall.url.clone();
            let flag = crate::util::DropFlag(flag.clone());
            sylvan::spawn(move || {
                let _flag = flag;
                get(&agent, &url)
            })
        };
        yield_until("the request reached the server", || asked.get());
        g.kill();
        assert!(g.join().unwrap_err().is_killed());
        assert_eq!(flag.get(), 1, "destructors ran");
        yield_until("the killed request's connection closed", || seen_eof.get());
        // The agent works for other greenlets.
        let gs: Vec<_> = (0..5)
            .map(|i| {
                let agent = agent.clone();
                let url = format!("{}/k{i}", good.url);
                sylvan::spawn(move || get(&agent, &url))
            })
            .collect();
        for (i, g) in gs.into_iter().enumerate() {
            assert_eq!(g.join().unwrap().unwrap(), format!("/k{i}"));
        }
    });
}

#[test]
fn killing_a_greenlet_mid_body_then_reusing_the_agent() {
    bounded(|| {
        quiet();
        let srv = server(|s, _, _, head| {
            if path_of(head) == "/slow" {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npart");
                sylvan::sleep(Duration::from_secs(3600));
                return Next::Close;
            }
            s.write_all(&ok(&path_of(head))).unwrap();
            Next::Keep
        });
        let agent = agent();
        let got_head = Rc::new(Cell::new(false));
        let g = {
            let (agent, url, got) = (agent.clone(), format!("{}/slow", srv.url), got_head.clone());
            sylvan::spawn(move || {
                let mut r = agent.get(&url).call().unwrap();
                got.set(true);
                r.body_mut().read_to_string()
            })
        };
        yield_until("headers received", || got_head.get());
        g.kill();
        assert!(g.join().unwrap_err().is_killed());
        assert_eq!(get(&agent, &format!("{}/ok", srv.url)).unwrap(), "/ok");
        assert_eq!(get(&agent, &format!("{}/ok2", srv.url)).unwrap(), "/ok2");
    });
}

#[test]
fn fifty_greenlets_times_four_requests_share_one_agent() {
    bounded(|| {
        let srv = server(|s, _, _, head| {
            // A park between head and answer so that requests interleave.
            sylvan::sleep(Duration::from_millis(1));
            s.write_all(&ok(&path_of(head))).unwrap();
            Next::Keep
        });
        let agent = agent_with(|c| c.max_idle_connections_per_host(64).max_idle_connections(64));
        let gs: Vec<_> = (0..50)
            .map(|i| {
                let agent = agent.clone();
                let url = srv.url.clone();
                sylvan::spawn(move || {
                    (0..4)
                        .map(|j| get(&agent, &format!("{url}/g{i}/r{j}")).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for (i, g) in gs.into_iter().enumerate() {
            let got = g.join().unwrap();
            let want: Vec<_> = (0..4).map(|j| format!("/g{i}/r{j}")).collect();
            assert_eq!(got, want);
        }
        let n = srv.accepts.get();
        assert!(
            (1..=50).contains(&n),
            "{n} connections for 50 concurrent clients"
        );
        // All 200 were keep-alive: later requests reuse the pool.
        let before = srv.accepts.get();
        for j in 0..10 {
            assert_eq!(
                get(&agent, &format!("{}/after{j}", srv.url)).unwrap(),
                format!("/after{j}")
            );
        }
        assert_eq!(srv.accepts.get(), before);
    });
}

// ---------------------------------------------------------------------
// other OS threads

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

/// Runs `f` on a new OS thread; parks (letting the hub run jobs sent to
/// it) until the thread ends, and returns its outcome.
fn on_other_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::Result<T> {
    let h = std::thread::spawn(f);
    yield_until("the other thread finished", || h.is_finished());
    h.join()
}

#[test]
fn an_agent_used_from_another_thread_panics_with_a_clear_message_and_stays_usable_at_home() {
    bounded(|| {
        let srv = echo_server();
        let agent = agent();
        assert_eq!(get(&agent, &format!("{}/home", srv.url)).unwrap(), "/home");
        let (a2, url) = (agent.clone(), srv.url.clone());
        let r = on_other_thread(move || {
            let _ = get(&a2, &format!("{url}/away"));
        });
        let msg = panic_message(&*r.expect_err("use from another thread must fail"));
        assert!(
            msg.contains("sylvan::ureq") && msg.contains("one ureq Agent per hub thread"),
            "{msg}"
        );
        for i in 0..3 {
            assert_eq!(
                get(&agent, &format!("{}/back{i}", srv.url)).unwrap(),
                format!("/back{i}")
            );
        }
    });
}

#[test]
fn a_response_body_read_from_another_thread_panics_with_a_clear_message() {
    bounded(|| {
        let go_on = Rc::new(Cell::new(false));
        let g2 = go_on.clone();
        let srv = server(move |s, _, _, head| {
            if path_of(head) == "/split" {
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf.")
                    .unwrap();
                yield_until("the test lets the rest go", || g2.get());
                let _ = s.write_all(b"rest.");
                return Next::Close;
            }
            s.write_all(&ok(&path_of(head))).unwrap();
            Next::Keep
        });
        let agent = agent();
        let res = agent.get(&format!("{}/split", srv.url)).call().unwrap();
        let r = on_other_thread(move || {
            let mut res = res;
            res.body_mut().read_to_string()
        });
        go_on.set(true);
        let msg = panic_message(&*r.expect_err("a body read from another thread must fail"));
        assert!(msg.contains("sylvan::ureq"), "{msg}");
        assert_eq!(
            get(&agent, &format!("{}/after", srv.url)).unwrap(),
            "/after"
        );
    });
}

#[test]
fn an_agent_dropped_on_another_thread_closes_its_pooled_connections_at_home() {
    bounded(|| {
        let eof = Rc::new(Cell::new(false));
        let e2 = eof.clone();
        let srv = server(move |s, _, _, head| {
            s.write_all(&ok(&path_of(head))).unwrap();
            let mut b = [0u8; 1];
            if let Ok(0) = s.read(&mut b) {
                e2.set(true);
            }
            Next::Close
        });
        let agent = agent();
        assert_eq!(get(&agent, &format!("{}/x", srv.url)).unwrap(), "/x");
        on_other_thread(move || drop(agent)).unwrap();
        yield_until("the pooled connection closed on its hub", || eof.get());
    });
}

#[test]
fn agent_shutdown_from_another_thread_interrupts_a_parked_call() {
    bounded(|| {
        let asked = Rc::new(Cell::new(false));
        let a2 = asked.clone();
        let srv = server(move |_, _, _, _| {
            a2.set(true);
            sylvan::sleep(Duration::from_secs(3600));
            Next::Close
        });
        let agent = agent();
        let g = {
            let (agent, url) = (agent.clone(), srv.url.clone());
            sylvan::spawn(move || get(&agent, &url))
        };
        yield_until("the request reached the server", || asked.get());
        let t = Instant::now();
        let other = agent.clone();
        on_other_thread(move || other.shutdown()).unwrap();
        let r = g.join().unwrap();
        assert!(r.is_err(), "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    });
}

// ---------------------------------------------------------------------
// TcpStream::is_reusable

#[test]
fn is_reusable_fresh_pending_peeked_and_drained() {
    bounded(|| {
        let (c, mut s) = pair();
        assert!(c.is_reusable());
        s.write_all(b"0123456789").unwrap();
        let mut b = [0u8; 10];
        assert_eq!(c.peek(&mut b[..3]).unwrap(), 3);
        assert!(!c.is_reusable(), "bytes pending after a peek");
        assert!(!c.is_reusable(), "the probe consumed nothing");
        // A read of exactly the buffer's size leaves bytes pending.
        assert_eq!((&c).read(&mut b[..4]).unwrap(), 4);
        assert_eq!(&b[..4], b"0123");
        assert!(!c.is_reusable());
        // A full read that happens to take the rest.
        assert_eq!((&c).read(&mut b[..6]).unwrap(), 6);
        assert_eq!(&b[..6], b"456789");
        assert!(c.is_reusable(), "nothing left");
        // A short read.
        s.write_all(b"abc").unwrap();
        let mut big = [0u8; 64];
        assert_eq!((&c).read(&mut big).unwrap(), 3);
        assert!(c.is_reusable());
        // More bytes after a short read: seen once the hub polls.
        s.write_all(b"more").unwrap();
        yield_until("new bytes seen", || !c.is_reusable());
        assert!(!c.is_reusable());
        assert_eq!((&c).read(&mut big).unwrap(), 4);
        assert_eq!(&big[..4], b"more");
        assert!(c.is_reusable());
    });
}

#[test]
fn is_reusable_is_false_after_eof_and_stays_false() {
    bounded(|| {
        let (c, s) = pair();
        drop(s);
        yield_until("end of stream seen", || !c.is_reusable());
        for _ in 0..3 {
            assert!(!c.is_reusable());
            sylvan::yield_now();
        }
        let mut b = [0u8; 8];
        assert_eq!((&c).read(&mut b).unwrap(), 0);
        assert!(!c.is_reusable(), "still at end of stream after the read");
    });
}

#[test]
fn is_reusable_after_data_and_fin_read_before_any_poll() {
    bounded(|| {
        let (c, mut s) = pair();
        s.write_all(b"last").unwrap();
        drop(s);
        let mut b = [0u8; 64];
        // Read at once: the flags start set, so no poll happens first.
        assert_eq!((&c).read(&mut b).unwrap(), 4);
        yield_until("end of stream seen", || !c.is_reusable());
        assert!(!c.is_reusable());
        assert_eq!((&c).read(&mut b).unwrap(), 0);
    });
}

#[test]
fn is_reusable_after_data_then_fin_later_on_a_drained_socket() {
    bounded(|| {
        let (c, mut s) = pair();
        s.write_all(b"resp").unwrap();
        let mut b = [0u8; 64];
        assert_eq!((&c).read(&mut b).unwrap(), 4);
        assert!(c.is_reusable());
        sylvan::sleep(Duration::from_millis(1));
        drop(s);
        yield_until("end of stream seen", || !c.is_reusable());
        for _ in 0..3 {
            assert!(!c.is_reusable());
        }
    });
}

#[test]
fn is_reusable_is_false_after_a_reset_and_stays_false() {
    bounded(|| {
        let (c, s) = pair();
        set_linger_zero(s.as_raw_fd());
        drop(s);
        yield_until("reset seen", || !c.is_reusable());
        assert!(!c.is_reusable());
        let mut b = [0u8; 8];
        let r = (&c).read(&mut b);
        assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
        assert!(!c.is_reusable());
    });
}

#[test]
fn is_reusable_never_parks_even_with_timeouts_or_nonblocking() {
    bounded(|| {
        let (c, _s) = pair();
        c.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let t = Instant::now();
        for _ in 0..100 {
            assert!(c.is_reusable());
        }
        c.set_nonblocking(true).unwrap();
        assert!(c.is_reusable());
        assert!(
            t.elapsed() < Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
        // And after a read that timed out.
        c.set_nonblocking(false).unwrap();
        let mut b = [0u8; 4];
        let r = (&c).read(&mut b);
        assert_eq!(r.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
        assert!(c.is_reusable());
    });
}

#[test]
fn is_reusable_sees_a_close_that_arrived_while_the_greenlet_never_parked() {
    // A std-thread peer closes while this greenlet blocks its OS thread
    // (CPU work) after having drained the socket: the kernel knows, the
    // hub has not polled since.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.write_all(b"resp").unwrap();
        rx.recv_timeout(Duration::from_secs(3)).unwrap();
        drop(s);
    });
    let c = bounded(|| {
        let c = TcpStream::connect(addr).unwrap();
        let mut b = [0u8; 64];
        assert_eq!((&c).read(&mut b).unwrap(), 4);
        c
    });
    tx.send(()).unwrap();
    t.join().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // The hub has not polled for 300 ms: it cannot vouch, so it asks.
    assert!(
        !c.is_reusable(),
        "a FIN in the kernel's queue passed for a reusable connection"
    );
    bounded(|| assert!(!c.is_reusable()));
}

// ---------------------------------------------------------------------
// more: timeout reasons, connects, send bodies, framing

/// A listener whose accept queue is full: connects to it hang.
fn full_backlog_listener() -> (TcpListener, String, Vec<TcpStream>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: listen() on an open listening socket only changes its backlog.
    assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 0) }, 0);
    let addr = l.local_addr().unwrap();
    let mut fill = Vec::new();
    for _ in 0..4 {
        match TcpStream::connect_timeout(addr, Duration::from_millis(50)) {
            Ok(s) => fill.push(s),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break,
            Err(e) => panic!("{e}"),
        }
    }
    (l, format!("http://{addr}"), fill)
}

fn timeout_reason(r: Result<String, ureq::Error>) -> ureq::Timeout {
    match r {
        Err(ureq::Error::Timeout(t)) => t,
        other => panic!("expected a timeout: {other:?}"),
    }
}

#[test]
fn timeouts_name_the_budget_that_ran_out() {
    bounded(|| {
        let srv = silent_server();
        let ms = |n| Some(Duration::from_millis(n));
        let cases: [(ureq::Agent, ureq::Timeout); 4] = [
            (
                agent_with(|c| c.timeout_global(ms(300))),
                ureq::Timeout::Global,
            ),
            (
                agent_with(|c| c.timeout_per_call(ms(300))),
                ureq::Timeout::PerCall,
            ),
            (
                agent_with(|c| c.timeout_recv_response(ms(300))),
                ureq::Timeout::RecvResponse,
            ),
            (
                agent_with(|c| c.timeout_per_read(ms(300))),
                ureq::Timeout::PerRead,
            ),
        ];
        for (agent, want) in cases {
            assert_eq!(timeout_reason(get(&agent, &srv.url)), want);
        }
    });
}

#[test]
fn connect_timeout_against_a_full_backlog() {
    bounded(|| {
        let (_l, url, _fill) = full_backlog_listener();
        let agent = agent_with(|c| c.timeout_connect(Some(Duration::from_millis(300))));
        let t = Instant::now();
        let r = get(&agent, &url);
        assert_eq!(timeout_reason(r), ureq::Timeout::Connect);
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_millis(1800),
            "{took:?}"
        );
    });
}

#[test]

fn connect_cut_short_by_the_global_timeout_names_the_global_timeout() {
    bounded(|| {
        let (_l, url, _fill) = full_backlog_listener();
        let agent = agent_with(|c| c.timeout_global(Some(Duration::from_millis(300))));
        assert_eq!(timeout_reason(get(&agent, &url)), ureq::Timeout::Global);
    });
}

#[test]
fn killing_a_greenlet_blocked_in_connect_then_the_agent_still_works() {
    bounded(|| {
        quiet();
        let (_l, url, _fill) = full_backlog_listener();
        let good = echo_server();
        let agent = agent();
        let started = Rc::new(Cell::new(false));
        let g = {
            let (agent, started) = (agent.clone(), started.clone());
            sylvan::spawn(move || {
                started.set(true);
                get(&agent, &url)
            })
        };
        yield_until("the connect started", || started.get());
        sylvan::yield_now();
        g.kill();
        assert!(g.join().unwrap_err().is_killed());
        assert_eq!(get(&agent, &format!("{}/ok", good.url)).unwrap(), "/ok");
    });
}

#[test]
fn send_body_timeout_against_a_server_that_never_reads() {
    bounded(|| {
        // The server accepts, then never reads.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let _srv = sylvan::spawn(move || {
            let (s, _) = l.accept().unwrap();
            sylvan::sleep(Duration::from_secs(3600));
            drop(s);
        });
        let body = vec![7u8; 32 << 20];
        for (agent, want) in [
            (
                agent_with(|c| c.timeout_send_body(Some(Duration::from_millis(400)))),
                ureq::Timeout::SendBody,
            ),
            (
                agent_with(|c| c.timeout_global(Some(Duration::from_millis(400)))),
                ureq::Timeout::Global,
            ),
        ] {
            let t = Instant::now();
            let r = agent.post(&url).send(&body[..]).map(|_| String::new());
            let took = t.elapsed();
            assert_eq!(timeout_reason(r), want);
            assert!(
                took >= Duration::from_millis(400) && took < Duration::from_millis(1900),
                "{took:?}"
            );
        }
    });
}

#[test]
fn a_body_delimited_by_close_and_http_1_0_are_read_whole_and_not_reused() {
    bounded(|| {
        let srv = server(|s, _, _, head| {
            let p = path_of(head);
            let r = if p == "/ten" {
                format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{p}", p.len())
            } else {
                format!("HTTP/1.1 200 OK\r\n\r\n{p}-until-close")
            };
            s.write_all(r.as_bytes()).unwrap();
            Next::Close
        });
        let agent = agent();
        for _ in 0..2 {
            assert_eq!(
                get(&agent, &format!("{}/eof", srv.url)).unwrap(),
                "/eof-until-close"
            );
            assert_eq!(get(&agent, &format!("{}/ten", srv.url)).unwrap(), "/ten");
        }
        assert_eq!(srv.accepts.get(), 4);
    });
}

#[test]
fn big_chunks_larger_than_the_input_buffer() {
    bounded(|| {
        let sizes = [1usize, 16383, 16384, 65536, 131072, 300_000, 7];
        let srv = server(move |s, _, _, _| {
            s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap();
            for (i, n) in sizes.iter().enumerate() {
                let data = vec![b'a' + i as u8; *n];
                s.write_all(format!("{n:x}\r\n").as_bytes()).unwrap();
                s.write_all(&data).unwrap();
                s.write_all(b"\r\n").unwrap();
            }
            s.write_all(b"0\r\n\r\n").unwrap();
            Next::Keep
        });
        let agent = agent_with(|c| c.input_buffer_size(64 << 10));
        let want: Vec<u8> = sizes
            .iter()
            .enumerate()
            .flat_map(|(i, n)| std::iter::repeat_n(b'a' + i as u8, *n))
            .collect();
        for _ in 0..2 {
            let got = agent
                .get(&srv.url)
                .call()
                .unwrap()
                .body_mut()
                .with_config()
                .limit(1 << 21)
                .read_to_vec()
                .unwrap();
            assert!(
                got == want,
                "body differs ({} vs {} bytes)",
                got.len(),
                want.len()
            );
        }
        assert_eq!(srv.accepts.get(), 1);
    });
}

#[test]
fn a_close_while_the_client_only_yields_is_detected() {
    bounded(|| {
        let srv = server(|s, _, _, head| {
            s.write_all(&ok(&path_of(head))).unwrap();
            sylvan::sleep(Duration::from_millis(50));
            Next::Close
        });
        let agent = agent();
        assert_eq!(get(&agent, &format!("{}/one", srv.url)).unwrap(), "/one");
        // Busy, but cooperative: only yields for 300 ms.
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(300) {
            sylvan::yield_now();
        }
        assert_eq!(get(&agent, &format!("{}/two", srv.url)).unwrap(), "/two");
        assert_eq!(srv.accepts.get(), 2);
    });
}

#[test]
fn agents_on_two_hub_threads_at_once() {
    let run = |tag: u32| {
        move || {
            bounded(|| {
                let srv = echo_server();
                let agent = agent();
                let gs: Vec<_> = (0..10)
                    .map(|i| {
                        let (agent, url) = (agent.clone(), format!("{}/t{tag}/{i}", srv.url));
                        sylvan::spawn(move || get(&agent, &url).unwrap())
                    })
                    .collect();
                for (i, g) in gs.into_iter().enumerate() {
                    assert_eq!(g.join().unwrap(), format!("/t{tag}/{i}"));
                }
            })
        }
    };
    let a = std::thread::spawn(run(1));
    let b = std::thread::spawn(run(2));
    a.join().unwrap();
    b.join().unwrap();
}

#[test]
fn a_head_dripped_byte_by_byte_then_reuse() {
    bounded(|| {
        let srv = server(|s, _, _, head| {
            let r = ok(&path_of(head));
            for b in r.chunks(1) {
                s.write_all(b).unwrap();
                sylvan::sleep(Duration::from_millis(1));
            }
            Next::Keep
        });
        let agent = agent_with(|c| c.timeout_global(Some(Duration::from_secs(3))));
        for i in 0..2 {
            assert_eq!(
                get(&agent, &format!("{}/drip{i}", srv.url)).unwrap(),
                format!("/drip{i}")
            );
        }
        assert_eq!(srv.accepts.get(), 1);
    });
}

#[test]
fn a_reset_mid_body_is_an_error_and_the_agent_recovers() {
    bounded(|| {
        let srv = server(|s, _, _, head| {
            if path_of(head) == "/rst" {
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nsome")
                    .unwrap();
                sylvan::sleep(Duration::from_millis(20));
                set_linger_zero(s.as_raw_fd());
                return Next::Close;
            }
            s.write_all(&ok(&path_of(head))).unwrap();
            Next::Keep
        });
        let agent = agent();
        let r = get(&agent, &format!("{}/rst", srv.url));
        assert!(r.is_err(), "{r:?}");
        assert_eq!(get(&agent, &format!("{}/fine", srv.url)).unwrap(), "/fine");
    });
}

#[test]
fn host_names_resolve_off_thread_and_pool_like_addresses() {
    bounded(|| {
        let srv = echo_server();
        let port = srv.url.rsplit(':').next().unwrap().to_owned();
        let agent = agent();
        for i in 0..5 {
            assert_eq!(
                get(&agent, &format!("http://localhost:{port}/h{i}")).unwrap(),
                format!("/h{i}")
            );
        }
        assert_eq!(srv.accepts.get(), 1);
    });
}

#[test]
fn a_buffered_body_read_on_another_thread_then_its_connection_closes_at_home() {
    bounded(|| {
        let eof = Rc::new(Cell::new(0));
        let e2 = eof.clone();
        let srv = server(move |s, _, _, head| {
            s.write_all(&ok(&path_of(head))).unwrap();
            let mut b = [0u8; 1];
            if let Ok(0) = s.read(&mut b) {
                e2.set(e2.get() + 1);
            }
            Next::Close
        });
        let agent = agent();
        let res = agent.get(&format!("{}/buf", srv.url)).call().unwrap();
        // The whole body came with the head: reading it touches no socket.
        let r = on_other_thread(move || {
            let mut res = res;
            res.body_mut().read_to_string()
        });
        match r {
            Ok(body) => assert_eq!(body.unwrap(), "/buf"),
            Err(p) => assert!(panic_message(&*p).contains("sylvan::ureq")),
        }
        yield_until("the connection closed at home", || eof.get() == 1);
        // An unread response dropped on another thread: the same.
        let res = agent.get(&format!("{}/drop", srv.url)).call().unwrap();
        on_other_thread(move || drop(res)).unwrap();
        yield_until("the second connection closed at home", || eof.get() == 2);
        assert_eq!(srv.accepts.get(), 2);
    });
}

#[test]
fn small_and_odd_input_buffer_sizes_with_heads_that_nearly_fill_them() {
    bounded(|| {
        // The path says how long the head should be and whether the body
        // is chunked.
        let srv = server(|s, _, _, head| {
            let p = path_of(head);
            let mut parts = p[1..].split('/');
            let head_len: usize = parts.next().unwrap().parse().unwrap();
            let chunked = parts.next() == Some("c");
            let body: Vec<u8> = (0..50_000u32).map(|i| b'a' + (i % 26) as u8).collect();
            let framing = if chunked {
                "Transfer-Encoding: chunked\r\n".to_owned()
            } else {
                format!("Content-Length: {}\r\n", body.len())
            };
            let base = format!("HTTP/1.1 200 OK\r\n{framing}X-Pad: \r\n\r\n").len();
            let pad = "p".repeat(head_len - base);
            let mut r = format!("HTTP/1.1 200 OK\r\n{framing}X-Pad: {pad}\r\n\r\n").into_bytes();
            assert_eq!(r.len(), head_len);
            if chunked {
                for c in body.chunks(777) {
                    r.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                    r.extend_from_slice(c);
                    r.extend_from_slice(b"\r\n");
                }
                r.extend_from_slice(b"0\r\n\r\n");
            } else {
                r.extend_from_slice(&body);
            }
            s.write_all(&r).unwrap();
            Next::Keep
        });
        let want: Vec<u8> = (0..50_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        for size in [1024usize, 3000, 4096, 20_000] {
            let agent = agent_with(|c| c.input_buffer_size(size));
            for head_len in [200, size / 2, size - 100, size - 1, size] {
                for kind in ["l", "c"] {
                    let url = format!("{}/{head_len}/{kind}", srv.url);
                    let got = agent
                        .get(&url)
                        .call()
                        .map_err(|e| format!("buffer {size}, head {head_len} {kind}: {e}"))
                        .unwrap()
                        .body_mut()
                        .read_to_vec()
                        .unwrap();
                    assert!(
                        got == want,
                        "buffer {size}, head {head_len} {kind}: body differs"
                    );
                }
            }
        }
    });
}

#[test]
fn unsolicited_bytes_on_an_idle_connection_while_the_client_is_busy_are_not_taken_as_the_answer() {
    // As `server_closing_an_idle_connection_while_the_client_is_busy_is_detected`,
    // with a stray response instead of a close: ureq's std transport
    // sees the pending bytes in `is_open` and opens a new connection.
    let (sent, sent_rx) = std::sync::mpsc::channel::<()>();
    let (url, t) = std_server(move |s, _, head| {
        let _ = s.write_all(&ok(&path_of(head)));
        std::thread::sleep(Duration::from_millis(100));
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale");
        let _ = sent.send(());
        Next::Keep
    });
    let agent = agent();
    assert_eq!(
        bounded(|| get(&agent, &format!("{url}/one"))).unwrap(),
        "/one"
    );
    // Busy, never parking, until the stray bytes are sent (a blocking wait
    // on a std channel, then a moment for them to arrive).
    sent_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the server sent the stray bytes");
    std::thread::sleep(Duration::from_millis(50));
    let second = bounded(|| get(&agent, &format!("{url}/two")));
    drop(agent);
    sylvan::spawn_blocking(move || t.join().unwrap());
    assert_eq!(second.unwrap(), "/two", "the answer to another request");
}

#[test]
fn fifty_greenlets_time_out_together_then_the_agent_serves_again() {
    bounded(|| {
        let silent = silent_server();
        let good = echo_server();
        let agent = agent_with(|c| c.timeout_global(Some(Duration::from_millis(300))));
        let t = Instant::now();
        let gs: Vec<_> = (0..50)
            .map(|_| {
                let (agent, url) = (agent.clone(), silent.url.clone());
                sylvan::spawn(move || get(&agent, &url))
            })
            .collect();
        for g in gs {
            assert_eq!(timeout_reason(g.join().unwrap()), ureq::Timeout::Global);
        }
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_millis(1800),
            "{took:?}"
        );
        assert_eq!(get(&agent, &format!("{}/ok", good.url)).unwrap(), "/ok");
    });
}

#[test]
fn killall_of_greenlets_mid_request_then_the_agent_serves_again() {
    bounded(|| {
        quiet();
        let waiting = Rc::new(Cell::new(0));
        let w2 = waiting.clone();
        let srv = server(move |s, _, _, head| {
            if path_of(head).starts_with("/hang") {
                w2.set(w2.get() + 1);
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nhalf");
                sylvan::sleep(Duration::from_secs(3600));
                return Next::Close;
            }
            s.write_all(&ok(&path_of(head))).unwrap();
            Next::Keep
        });
        let agent = agent();
        let gs: Vec<_> = (0..20)
            .map(|i| {
                let (agent, url) = (agent.clone(), format!("{}/hang{i}", srv.url));
                sylvan::spawn(move || get(&agent, &url))
            })
            .collect();
        yield_until("all requests reached the server", || waiting.get() == 20);
        sylvan::killall(&gs, None).unwrap();
        for g in gs {
            assert!(g.join().unwrap_err().is_killed());
        }
        for i in 0..5 {
            assert_eq!(
                get(&agent, &format!("{}/ok{i}", srv.url)).unwrap(),
                format!("/ok{i}")
            );
        }
    });
}

#[test]
fn agent_shutdown_on_its_own_thread_interrupts_and_refuses_new_calls() {
    bounded(|| {
        let asked = Rc::new(Cell::new(false));
        let a2 = asked.clone();
        let srv = server(move |_, _, _, _| {
            a2.set(true);
            sylvan::sleep(Duration::from_secs(3600));
            Next::Close
        });
        let agent = agent();
        let g = {
            let (agent, url) = (agent.clone(), srv.url.clone());
            sylvan::spawn(move || get(&agent, &url))
        };
        yield_until("the request reached the server", || asked.get());
        let t = Instant::now();
        agent.clone().shutdown();
        assert!(g.join().unwrap().is_err());
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        let r = get(&agent, &srv.url);
        assert!(r.is_err(), "{r:?}");
    });
}

#[test]
fn a_close_while_other_greenlets_keep_the_hub_busy_is_detected() {
    bounded(|| {
        let srv = server(|s, _, _, head| {
            s.write_all(&ok(&path_of(head))).unwrap();
            sylvan::sleep(Duration::from_millis(50));
            Next::Close
        });
        let agent = agent();
        assert_eq!(get(&agent, &format!("{}/one", srv.url)).unwrap(), "/one");
        // Two spinners keep the ready queue from ever emptying.
        let stop = Rc::new(Cell::new(false));
        let spinners: Vec<_> = (0..2)
            .map(|_| {
                let stop = stop.clone();
                sylvan::spawn(move || {
                    while !stop.get() {
                        sylvan::yield_now();
                    }
                })
            })
            .collect();
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(300) {
            sylvan::yield_now();
        }
        let r = get(&agent, &format!("{}/two", srv.url));
        stop.set(true);
        assert!(sylvan::joinall(&spinners, None));
        assert_eq!(r.unwrap(), "/two");
        assert_eq!(srv.accepts.get(), 2);
    });
}

#[test]
fn a_corrupt_gzip_body_is_an_error_on_a_greenlet_and_the_agent_recovers() {
    bounded(|| {
        let srv = server(|s, _, _, head| {
            if path_of(head) == "/bad" {
                let junk = [
                    0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3,
                ];
                let mut r = format!(
                    "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
                    junk.len()
                )
                .into_bytes();
                r.extend_from_slice(&junk);
                s.write_all(&r).unwrap();
                return Next::Keep;
            }
            s.write_all(&ok(&path_of(head))).unwrap();
            Next::Keep
        });
        let agent = agent();
        let g = {
            let (agent, url) = (agent.clone(), format!("{}/bad", srv.url));
            sylvan::spawn(move || get(&agent, &url))
        };
        let r = g.join().unwrap();
        assert!(r.is_err(), "{r:?}");
        assert_eq!(get(&agent, &format!("{}/good", srv.url)).unwrap(), "/good");
    });
}

#[test]
fn is_reusable_sees_a_close_queued_behind_a_full_poll_batch() {
    // `is_reusable` trusts a recent poll that saw no edge. A poll takes
    // at most a batch of events, though: a FIN queued behind more than a
    // batch of other sockets' edges is not seen by that poll, however old
    // the FIN is (here: tens of ms, far more than the 1 ms the docs allow).
    const OTHERS: usize = 1500;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (clients, peers, x, x_peer) = bounded(|| {
        let mut clients = Vec::new();
        let mut peers = Vec::new();
        for _ in 0..OTHERS {
            clients.push(TcpStream::connect(addr).unwrap());
            peers.push(l.accept().unwrap().0);
        }
        let x = TcpStream::connect(addr).unwrap();
        let (mut x_peer, _) = l.accept().unwrap();
        x_peer.write_all(b"resp").unwrap();
        let mut b = [0u8; 64];
        assert_eq!((&x).read(&mut b).unwrap(), 4);
        // Let every pending edge be polled.
        for _ in 0..5 {
            sylvan::sleep(Duration::from_millis(10));
        }
        assert!(x.is_reusable());
        (clients, peers, x, x_peer)
    });
    // Something parked on IO, as in any server: the hub polls on yields.
    let idle = TcpListener::bind("127.0.0.1:0").unwrap();
    let parked = sylvan::spawn(move || drop(idle.accept()));
    sylvan::yield_now();
    // Another thread makes every other socket readable, then closes x's
    // peer; this thread waits without polling meanwhile.
    let t = std::thread::spawn(move || {
        let mut peers = peers;
        for p in peers.iter_mut() {
            p.write_all(b"!").unwrap();
        }
        drop(x_peer);
        peers
    });
    let peers = t.join().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // A timer already due: one turn of the hub, with one poll.
    sylvan::sleep(Duration::from_nanos(1));
    let after_one_poll = x.is_reusable();
    parked.kill();
    drop((clients, peers));
    assert!(
        !after_one_poll,
        "a FIN 200 ms old passed for a reusable connection"
    );
}

#[test]
fn an_agent_outliving_its_hub_thread_drops_quietly_elsewhere() {
    let (url, t) = std_server(|s, _, head| {
        let _ = s.write_all(&ok(&path_of(head)));
        Next::Keep
    });
    // The agent, with a pooled connection, leaves a hub thread that ends.
    let agent = std::thread::spawn(move || {
        let agent = agent();
        let body = bounded(|| get(&agent, &format!("{url}/x")).unwrap());
        assert_eq!(body, "/x");
        agent
    })
    .join()
    .unwrap();
    // Its hub is gone: dropping it here must neither panic nor touch the
    // socket from this thread.
    drop(agent);
    let accepts = sylvan::spawn_blocking(move || t.join().unwrap());
    assert_eq!(accepts, 1);
}
