//! Probe round 28: sylvan against real, independent servers and clients.
//!
//! `sylvan::ureq` from many greenlets against nginx (each test starts its
//! own nginx in a temp prefix on a free port and stops it in a drop
//! guard): keep-alive reuse over hundreds of requests, gzip bodies decoded
//! and bounded, HEAD, 304 for `If-Modified-Since`, 404 and 301, 8 MB files
//! read in odd-sized pieces, `Range` requests (single, suffix, multipart,
//! unsatisfiable), every pooled connection closed by `keepalive_timeout
//! 1s`, `keepalive_requests 3` under concurrency, `limit_rate` under a
//! sylvan `Timeout` while other greenlets keep fetching, and 100 greenlets
//! on one agent. Each scenario whose outcome could be ureq's own is also
//! run with ureq on std sockets first.
//!
//! Then real clients against a small HTTP/1.x responder written with
//! `StreamServer` and a `Pool`: ApacheBench (`ab`, with and without `-k`),
//! `wrk` (which drops its connections mid-response when its time is up),
//! Python's `http.client` over 200 pipelined requests and over keep-alive
//! connections from threads, `socat` and `nc` half-closing, and clients
//! that abort a 4 MB response with a FIN or a reset. The server must count
//! every request, stay healthy, and leave no handler greenlet and no
//! server socket behind (`sylvan::stats`, `StreamServer::handlers`, the
//! server port's `ESTABLISHED`/`CLOSE_WAIT` entries in `/proc/net/tcp`,
//! and in a child process the exact `/proc/self/fd` count).
//!
//! A program that is not installed makes its test say so on stderr and
//! pass (`apt-get install nginx-light apache2-utils wrk socat
//! netcat-openbsd` runs them all). Tests marked `BUG` show a defect and
//! fail without their `ignore`.

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use sylvan::net::{StreamServer, TcpStream};
use sylvan::pool::Pool;

use crate::util::{
    Config, Got, Nginx, NginxConf, agents, bounded, get, in_child, on_std, shape, xconn,
};

// ---------------------------------------------------------------- helpers

/// Whether `prog` can be run (found on `PATH` or as a path).
fn have(prog: &str) -> bool {
    let ok = if prog.contains('/') {
        Path::new(prog).exists()
    } else {
        Command::new("sh")
            .args(["-c", &format!("command -v {prog}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if !ok {
        eprintln!("{prog} is not installed: skipped (apt-get install it to run this probe)");
    }
    ok
}

/// Runs `prog args` under coreutils `timeout secs` on the blocking pool
/// (only the calling greenlet parks: the hub serves meanwhile), with
/// `stdin` fed to it; prints its output for a failing test.
fn run_prog(secs: u32, prog: &str, args: &[String], stdin: Vec<u8>) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.arg(secs.to_string())
        .arg(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let limit = Duration::from_secs(u64::from(secs) + 2);
    let name = prog.to_owned();
    let out = sylvan::with_timeout(limit, move || {
        sylvan::spawn_blocking(move || {
            let mut child = cmd.spawn().expect("spawn the client program");
            let mut input = child.stdin.take().unwrap();
            let feeder = std::thread::spawn(move || {
                let _ = input.write_all(&stdin);
            });
            let out = child.wait_with_output().expect("wait for the program");
            let _ = feeder.join();
            out
        })
    })
    .unwrap_or_else(|_| panic!("{name} hung"));
    eprintln!(
        "{prog} {args:?}: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(4000)]),
        String::from_utf8_lossy(&out.stderr[..out.stderr.len().min(4000)])
    );
    out
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The number after `label` on its line of `out` (as `ab` and `wrk` print
/// them: `Complete requests:      5000`).
fn num_after(out: &str, label: &str) -> u64 {
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} in:\n{out}"));
    line.trim_start()[label.len()..]
        .split_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no number after {label:?} in {line:?}"))
}

/// TCP sockets of this network namespace whose local port is `port`, as
/// `(state, remote port)`; the states are `/proc/net/tcp`'s hex codes
/// (`01` established, `08` close-wait, `0A` listen, `06` time-wait...).
fn tcp_by_local_port(port: u16) -> Vec<(String, u16)> {
    let Ok(t) = std::fs::read_to_string("/proc/net/tcp") else {
        return Vec::new();
    };
    t.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let lp = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
            let rp = u16::from_str_radix(f.get(2)?.rsplit(':').next()?, 16).ok()?;
            (lp == port).then(|| (f[3].to_owned(), rp))
        })
        .collect()
}

/// TCP sockets connected *to* `port` (client sides), as `(state, local
/// port)`.
fn tcp_by_remote_port(port: u16) -> Vec<(String, u16)> {
    let Ok(t) = std::fs::read_to_string("/proc/net/tcp") else {
        return Vec::new();
    };
    t.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let lp = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
            let rp = u16::from_str_radix(f.get(2)?.rsplit(':').next()?, 16).ok()?;
            (rp == port).then(|| (f[3].to_owned(), lp))
        })
        .collect()
}

/// Sockets that still hold a descriptor somewhere: established, or
/// close-wait (the peer closed, this side did not).
fn open_states(v: &[(String, u16)]) -> Vec<(String, u16)> {
    v.iter()
        .filter(|(s, _)| s == "01" || s == "08")
        .cloned()
        .collect()
}

/// Waits (bounded, 3 s) until no server-side socket on `port` holds a
/// descriptor; panics listing them otherwise.
fn server_sockets_all_closed(port: u16) {
    let t = Instant::now();
    loop {
        let open = open_states(&tcp_by_local_port(port));
        if open.is_empty() {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "server sockets on port {port} still open 3 s after the clients left: {open:?}"
        );
        sylvan::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded, 3 s) until no client socket to `port` holds a
/// descriptor in this namespace.
fn client_sockets_all_closed(port: u16) {
    let t = Instant::now();
    loop {
        let open = open_states(&tcp_by_remote_port(port));
        if open.is_empty() {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "client sockets to port {port} still open 3 s after the agent was dropped: {open:?}"
        );
        sylvan::sleep(Duration::from_millis(20));
    }
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// FNV-1a, to compare large bodies without keeping two copies.
fn fnv(h: u64, data: &[u8]) -> u64 {
    data.iter()
        .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}
const FNV0: u64 = 0xcbf2_9ce4_8422_2325;

// ---------------------------------------------------------------- an HTTP responder on StreamServer

/// Byte `i` of every generated body.
fn body_byte(i: usize) -> u8 {
    b'a' + (i % 26) as u8
}

/// A 64 KiB slice of the body pattern, starting at offset 0 (its length is
/// a multiple of 26, so consecutive copies continue the pattern).
fn pattern_block() -> Vec<u8> {
    (0..26 * 2521).map(body_byte).collect()
}

/// What the responder counted.
#[derive(Default)]
struct Counts {
    requests: Cell<u64>,
    connections: Cell<u64>,
    finished: Cell<u64>,
    /// Connections that ended before a whole request arrived (end of
    /// stream or an error on the first read).
    empty: Cell<u64>,
}

/// HTTP/1.0 and 1.1 with keep-alive and pipelining: `GET /size/N` answers
/// N generated bytes, anything else `ok <path>\n`. HTTP/1.1 keeps the
/// connection unless the client says `close`; HTTP/1.0 keeps it only when
/// the client says `keep-alive` (as `ab -k` does), answering it in kind.
fn responder(
    counts: Rc<Counts>,
) -> impl Fn(TcpStream, SocketAddr) -> io::Result<()> + Clone + 'static {
    let block = Rc::new(pattern_block());
    move |conn: TcpStream, _peer: SocketAddr| {
        counts.connections.set(counts.connections.get() + 1);
        let _end = OnDrop(counts.clone());
        let served = Cell::new(0u64);
        let _empty = EmptyIfNone(&counts, &served);
        conn.set_nodelay(true)?;
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        conn.set_write_timeout(Some(Duration::from_secs(5)))?;
        let mut r = BufReader::with_capacity(16 << 10, &conn);
        let mut w = &conn;
        loop {
            let mut first = String::new();
            let n = r.read_line(&mut first);
            if !matches!(n, Ok(1..)) {
                return n.map(|_| ());
            }
            let mut parts = first.split_whitespace();
            let (_method, target, version) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or("/").to_owned(),
                parts.next().unwrap_or("HTTP/1.0").to_owned(),
            );
            let mut conn_hdr = String::new();
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                if line == "\r\n" || line == "\n" {
                    break;
                }
                let l = line.to_ascii_lowercase();
                if let Some(v) = l.strip_prefix("connection:") {
                    conn_hdr = v.trim().to_owned();
                }
                if let Some(v) = l.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            io::copy(&mut (&mut r).take(len as u64), &mut io::sink())?;
            counts.requests.set(counts.requests.get() + 1);
            served.set(served.get() + 1);
            let keep = if version == "HTTP/1.1" {
                conn_hdr != "close"
            } else {
                conn_hdr == "keep-alive"
            };
            let conn_line = match (keep, version.as_str()) {
                (true, "HTTP/1.1") => "",
                (true, _) => "Connection: keep-alive\r\n",
                (false, _) => "Connection: close\r\n",
            };
            let size: Option<usize> = target.strip_prefix("/size/").and_then(|n| n.parse().ok());
            let small = format!("ok {target}\n");
            let n = size.unwrap_or(small.len());
            let mut out = format!(
                "{version} 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {n}\r\n{conn_line}\r\n"
            )
            .into_bytes();
            match size {
                None => {
                    out.extend_from_slice(small.as_bytes());
                    w.write_all(&out)?;
                }
                Some(n) if n <= block.len() => {
                    out.extend_from_slice(&block[..n]);
                    w.write_all(&out)?;
                }
                Some(mut n) => {
                    w.write_all(&out)?;
                    while n > 0 {
                        let k = n.min(block.len());
                        w.write_all(&block[..k])?;
                        n -= k;
                    }
                }
            }
            if !keep {
                return Ok(());
            }
        }
    }
}

struct EmptyIfNone<'a>(&'a Counts, &'a Cell<u64>);

impl Drop for EmptyIfNone<'_> {
    fn drop(&mut self) {
        if self.1.get() == 0 {
            self.0.empty.set(self.0.empty.get() + 1);
        }
    }
}

struct OnDrop(Rc<Counts>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.finished.set(self.0.finished.get() + 1);
    }
}

/// The responder on `127.0.0.1:0` behind a `Pool` of `pool` greenlets,
/// started; handler errors (clients that go away) are not reported.
fn http_server(pool: usize) -> (StreamServer, Rc<Counts>, u16) {
    let counts = Rc::new(Counts::default());
    let h = responder(counts.clone());
    let server = StreamServer::bind("127.0.0.1:0", move |c, p| {
        let _ = h(c, p);
    })
    .unwrap()
    .with_pool(Pool::new(pool))
    .start()
    .unwrap();
    let port = server.local_addr().unwrap().port();
    (server, counts, port)
}

/// Waits (bounded, 3 s) until the server has no handler left.
fn handlers_gone(server: &StreamServer) {
    let t = Instant::now();
    while server.handlers() > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "{} handlers still alive 3 s after the clients left:\n{}",
            server.handlers(),
            sylvan::dump()
        );
        sylvan::sleep(Duration::from_millis(10));
    }
}

/// One plain request with ureq on sylvan sockets: the server is healthy.
fn still_serves(port: u16) {
    let agent = sylvan::ureq::agent(
        ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(2)))
            .build(),
    );
    let body = agent
        .get(format!("http://127.0.0.1:{port}/after"))
        .call()
        .expect("the server still answers")
        .body_mut()
        .read_to_string()
        .unwrap();
    assert_eq!(body, "ok /after\n");
}

// ---------------------------------------------------------------- nginx

/// The `http` block of the probes' nginx (after the common frame of
/// [`util::Nginx`]).
const HTTP: &str = r#"access_log off;
  types { text/plain txt; text/html html; application/octet-stream bin; }
  default_type text/plain;
  gzip on; gzip_types text/plain; gzip_min_length 20;"#;

/// The `server` block of the probes' nginx (after its `listen` and `root`).
const SERVER: &str = r#"add_header X-Conn "$connection/$connection_requests" always;
    location /slow/ { gzip off; limit_rate 40k; }"#;

/// `big.bin`: 8 MiB of pseudo-random bytes (served as octet-stream, never
/// gzipped).
fn big_bin() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..8 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// `words.txt`: 2 MB of numbered text lines (gzipped by nginx).
fn words() -> Vec<u8> {
    let mut v = Vec::with_capacity(2 << 20);
    let mut i = 0;
    while v.len() < 2_000_000 {
        writeln!(v, "{i:07} pack my box with five dozen liquor jugs").unwrap();
        i += 1;
    }
    v
}

/// nginx serving `a.txt`, `dir/`, `big.bin`, `words.txt`, `w100k.txt`,
/// `zeros.txt` and `slow/`, with `http_extra` in its `http` block and
/// `server_extra` in its `server` block; `None` (and a line saying so)
/// without nginx.
fn nginx(tag: &str, http_extra: &str, server_extra: &str) -> Option<Nginx> {
    let conf = NginxConf {
        worker_connections: 1024,
        ports: 1,
        http: &format!("{HTTP}\n  {http_extra}"),
        server: &format!("{SERVER}\n    {server_extra}"),
    };
    Nginx::start(&format!("p28-{tag}"), &conf, |www| {
        for d in ["dir", "slow"] {
            std::fs::create_dir_all(www.join(d)).unwrap();
        }
        std::fs::write(www.join("a.txt"), "hello nginx\n").unwrap();
        std::fs::write(www.join("dir/index.html"), "<p>dir index</p>\n").unwrap();
        std::fs::write(www.join("big.bin"), big_bin()).unwrap();
        std::fs::write(www.join("words.txt"), words()).unwrap();
        std::fs::write(www.join("w100k.txt"), &words()[..100_000]).unwrap();
        std::fs::write(www.join("zeros.txt"), vec![b'0'; 6 << 20]).unwrap();
        std::fs::write(www.join("slow/s.txt"), vec![b's'; 200_000]).unwrap();
        std::fs::write(www.join("slow/q.txt"), vec![b'q'; 12_000]).unwrap();
    })
}

fn sylvan_agent(f: impl Fn(Config) -> Config) -> ureq::Agent {
    sylvan::ureq::agent(f(ureq::Agent::config_builder()).build())
}

fn distinct_conns(v: &[Got]) -> usize {
    let mut c: Vec<u64> = v.iter().map(|g| g.conn).collect();
    c.sort_unstable();
    c.dedup();
    c.len()
}

/// 8 greenlets × 50 GETs on one agent (8 idle connections allowed per
/// host): all 400 answers right, carried by at most 8 nginx connections
/// (keep-alive reuse, nginx's `$connection_requests` counting up to 50 or
/// more), and once the agent is dropped no client socket to nginx is
/// left open and no greenlet is left.
#[test]
fn nginx_400_requests_from_8_greenlets_reuse_a_few_connections() {
    let Some(ng) = nginx("reuse", "", "") else {
        return;
    };
    bounded(|| {
        let alive = sylvan::stats().alive;
        let agent = sylvan_agent(|c| {
            c.max_idle_connections_per_host(8)
                .timeout_global(Some(Duration::from_secs(3)))
        });
        let url = ng.url("/a.txt");
        let gs: Vec<_> = (0..8)
            .map(|_| {
                let (agent, url) = (agent.clone(), url.clone());
                sylvan::spawn(move || {
                    (0..50)
                        .map(|_| get(&agent, &url).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let all: Vec<Got> = gs.into_iter().flat_map(|g| g.join().unwrap()).collect();
        assert_eq!(all.len(), 400);
        assert!(
            all.iter()
                .all(|g| g.status == 200 && g.body == b"hello nginx\n")
        );
        let conns = distinct_conns(&all);
        let most = all.iter().map(|g| g.req).max().unwrap();
        eprintln!("400 requests on {conns} connections, at most {most} on one");
        assert!(conns <= 8, "{conns} connections for 8 greenlets");
        assert!(most >= 50, "at most {most} requests on a connection");
        drop(agent);
        client_sockets_all_closed(ng.port());
        assert_eq!(sylvan::stats().alive, alive);
    });
}

/// gzip from nginx (chunked): a 2 MB text and 6 MiB of zeros (about 6 KB
/// on the wire) decode to exactly the file; an agent asking for
/// `identity` gets the plain file with its `Content-Length`; a
/// decompressed-size bound (`limit(1 MiB)`) on the zeros fails with
/// `BodyExceedsLimit` as on std, and the agent then serves the next
/// request.
#[test]
fn nginx_gzip_bodies_decoded_whole_and_bounded() {
    let Some(ng) = nginx("gzip", "", "") else {
        return;
    };
    bounded(|| {
        let (sy, st) = agents(|c| c.timeout_global(Some(Duration::from_secs(4))));
        let mut res = sy.get(ng.url("/words.txt")).call().unwrap();
        assert_eq!(
            res.headers().get("transfer-encoding").map(|v| v.as_bytes()),
            Some(&b"chunked"[..])
        );
        let body = res.body_mut().with_config().limit(4 << 20).read_to_vec();
        let (body, want) = (body.unwrap(), words());
        assert!(
            body == want,
            "{} bytes decoded, want {}",
            body.len(),
            want.len()
        );
        let z = get(&sy, &ng.url("/zeros.txt")).unwrap();
        assert!(z.body.len() == 6 << 20 && z.body.iter().all(|&b| b == b'0'));

        let plain = sylvan_agent(|c| c.accept_encoding("identity"));
        let res = plain.get(ng.url("/words.txt")).call().unwrap();
        let cl = res
            .headers()
            .get("content-length")
            .unwrap()
            .to_str()
            .unwrap();
        assert_eq!(cl, words().len().to_string());
        assert!(res.headers().get("content-encoding").is_none());

        let bounded_read = |a: &ureq::Agent, url: &str| {
            let mut res = a.get(url).call().unwrap();
            res.body_mut()
                .with_config()
                .limit(1 << 20)
                .read_to_vec()
                .unwrap_err()
                .to_string()
        };
        let zurl = ng.url("/zeros.txt");
        let mine = bounded_read(&sy, &zurl);
        let u = zurl.clone();
        let theirs = on_std(st, move |a| bounded_read(a, &u));
        eprintln!("sylvan: {mine}; std: {theirs}");
        assert_eq!(mine, theirs);
        assert!(mine.contains("limit"), "{mine}");
        assert_eq!(get(&sy, &ng.url("/a.txt")).unwrap().body, b"hello nginx\n");
    });
}

/// Bodiless answers keep the connection: a HEAD of the 8 MiB file
/// (`Content-Length` 8388608, nothing read), a GET with
/// `If-Modified-Since` set to the file's own `Last-Modified` (304), then
/// an old date (200 with the body), all on one nginx connection, as on
/// std.
#[test]
fn nginx_head_and_if_modified_since_304_keep_the_connection() {
    let Some(ng) = nginx("ims", "", "") else {
        return;
    };
    bounded(|| {
        let (sy, st) = agents(|c| c.timeout_global(Some(Duration::from_secs(3))));
        let (big, a) = (ng.url("/big.bin"), ng.url("/a.txt"));
        let run = move |agent: &ureq::Agent| -> Vec<(u16, u64, u64, String, usize)> {
            let mut v = Vec::new();
            let res = agent.head(&big).call().unwrap();
            let (c, q) = xconn(&res);
            let cl = res.headers()["content-length"].to_str().unwrap().to_owned();
            let lm = res.headers()["last-modified"].to_str().unwrap().to_owned();
            v.push((res.status().as_u16(), c, q, cl, 0));
            drop(res);
            for since in [lm.as_str(), "Mon, 01 Jan 1990 00:00:00 GMT"] {
                let mut res = agent
                    .get(&big)
                    .header("If-Modified-Since", since)
                    .call()
                    .unwrap();
                let (c, q) = xconn(&res);
                let n = res
                    .body_mut()
                    .with_config()
                    .limit(16 << 20)
                    .read_to_vec()
                    .unwrap()
                    .len();
                v.push((res.status().as_u16(), c, q, String::new(), n));
            }
            let g = get(agent, &a).unwrap();
            v.push((g.status, g.conn, g.req, String::new(), g.body.len()));
            v
        };
        let mine = run(&sy);
        let theirs = on_std(st, run);
        let norm = |v: &[(u16, u64, u64, String, usize)]| -> Vec<(u16, u64, String, usize)> {
            v.iter()
                .map(|(s, c, q, cl, n)| (*s, *q + 100 * u64::from(*c != v[0].1), cl.clone(), *n))
                .collect()
        };
        let want = vec![
            (200, 1, "8388608".to_owned(), 0),
            (304, 2, String::new(), 0),
            (200, 3, String::new(), 8 << 20),
            (200, 4, String::new(), 12),
        ];
        assert_eq!(norm(&theirs), want, "std");
        assert_eq!(norm(&mine), want, "sylvan");
    });
}

/// nginx's own 404 page and its 301 for a directory without the slash:
/// by default the 404 is `Error::StatusCode(404)` and the 301 is followed
/// to `/dir/` (its index); with `http_status_as_error(false)` and
/// `max_redirects(0)` both come back as answers (nginx's HTML body, a
/// `Location` ending in `/dir/`), the connection kept throughout, as on
/// std.
#[test]
fn nginx_404_and_301_directory_redirect() {
    let Some(ng) = nginx("redir", "", "") else {
        return;
    };
    bounded(|| {
        let (sy, st) = agents(|c| c.timeout_global(Some(Duration::from_secs(3))));
        let (raw, raw_std) = agents(|c| {
            c.http_status_as_error(false)
                .max_redirects(0)
                .timeout_global(Some(Duration::from_secs(3)))
        });
        let (missing, dir) = (ng.url("/missing.txt"), ng.url("/dir"));
        let run = move |agent: &ureq::Agent, raw: &ureq::Agent| -> Vec<String> {
            let mut v = Vec::new();
            v.push(format!("{:?}", get(agent, &missing).map(|g| g.status)));
            let g = get(agent, &dir).unwrap();
            v.push(format!("{} {}", g.status, String::from_utf8_lossy(&g.body)));
            let g = get(raw, &missing).unwrap();
            let page = String::from_utf8_lossy(&g.body).into_owned();
            v.push(format!(
                "{} {} {}",
                g.status,
                g.req,
                page.contains("404 Not Found")
            ));
            let res = raw.get(&dir).call().unwrap();
            let loc = res.headers()["location"].to_str().unwrap().to_owned();
            v.push(format!(
                "{} {} {}",
                res.status(),
                xconn(&res).1,
                loc.ends_with("/dir/")
            ));
            drop(res);
            let g = get(raw, &missing).unwrap();
            v.push(format!("{} {}", g.status, g.req));
            v
        };
        let mine = run(&sy, &raw);
        let theirs = on_std(st, move |a| run(a, &raw_std));
        eprintln!("sylvan {mine:?}\nstd {theirs:?}");
        assert_eq!(mine, theirs);
        assert_eq!(mine[0], "Err(StatusCode(404))");
        assert_eq!(mine[1], "200 <p>dir index</p>\n");
        // (ureq does not pool the connection of an unfollowed 301,
        // on std sockets either: the last 404 is on a new connection.)
        assert_eq!(
            mine[2..],
            ["404 1 true", "301 Moved Permanently 2 true", "404 1"]
        );
    });
}

/// Four greenlets each download the 8 MiB file at once through
/// `Body::as_reader`, with read sizes cycling 1, 7, 4093 and 65537 bytes:
/// every copy hashes as the file, and a ticker greenlet keeps running
/// meanwhile (the downloads park, they do not hold the hub).
#[test]
fn nginx_8mib_files_read_in_odd_pieces_by_four_greenlets() {
    let Some(ng) = nginx("big", "", "") else {
        return;
    };
    bounded(|| {
        let want = fnv(FNV0, &big_bin());
        let agent = sylvan_agent(|c| c.timeout_global(Some(Duration::from_secs(4))));
        let done = Rc::new(Cell::new(false));
        let ticks = Rc::new(Cell::new(0u32));
        let ticker = {
            let (done, ticks) = (done.clone(), ticks.clone());
            sylvan::spawn(move || {
                while !done.get() {
                    sylvan::sleep(Duration::from_millis(2));
                    ticks.set(ticks.get() + 1);
                }
            })
        };
        let t = Instant::now();
        let gs: Vec<_> = (0..4)
            .map(|i| {
                let (agent, url) = (agent.clone(), ng.url("/big.bin"));
                sylvan::spawn(move || {
                    let mut res = agent.get(&url).call().unwrap();
                    let mut r = res.body_mut().with_config().limit(16 << 20).reader();
                    let sizes = [1usize, 7, 4093, 65537];
                    let mut buf = vec![0u8; 65537];
                    let (mut h, mut total, mut k) = (FNV0, 0usize, i);
                    loop {
                        let want = sizes[k % 4];
                        k += 1;
                        let n = r.read(&mut buf[..want]).unwrap();
                        if n == 0 {
                            break;
                        }
                        h = fnv(h, &buf[..n]);
                        total += n;
                    }
                    (total, h)
                })
            })
            .collect();
        for g in gs {
            assert_eq!(g.join().unwrap(), (8 << 20, want));
        }
        done.set(true);
        ticker.join().unwrap();
        eprintln!("4 × 8 MiB in {:?}, {} ticks", t.elapsed(), ticks.get());
        assert!(ticks.get() >= 3, "the ticker ran {} times", ticks.get());
    });
}

/// `Range` requests on the 8 MiB file: `bytes=100-199` (206, the right
/// 100 bytes, `Content-Range`), a suffix `bytes=-10`, an open end
/// `bytes=8388600-`, two ranges (`multipart/byteranges` holding both
/// parts) and an unsatisfiable one (416), all on one connection, as on
/// std.
#[test]
fn nginx_range_requests() {
    let Some(ng) = nginx("range", "", "") else {
        return;
    };
    bounded(|| {
        let file = big_bin();
        let (sy, st) = agents(|c| {
            c.http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(3)))
        });
        let url = ng.url("/big.bin");
        let ranges = [
            "bytes=100-199",
            "bytes=-10",
            "bytes=8388600-",
            "bytes=0-3,1000-1003",
            "bytes=9000000-9000100",
        ];
        let run = move |agent: &ureq::Agent| -> Vec<(u16, u64, String, String, Vec<u8>)> {
            ranges
                .iter()
                .map(|r| {
                    let mut res = agent.get(&url).header("Range", *r).call().unwrap();
                    let h = |n: &str| {
                        res.headers()
                            .get(n)
                            .map(|v| v.to_str().unwrap().to_owned())
                            .unwrap_or_default()
                    };
                    let (cr, ct) = (h("content-range"), h("content-type"));
                    let (_, q) = xconn(&res);
                    let body = res.body_mut().read_to_vec().unwrap();
                    (res.status().as_u16(), q, cr, ct, body)
                })
                .collect()
        };
        let mine = run(&sy);
        let theirs = on_std(st, run);
        assert_eq!(mine.len(), theirs.len());
        for (m, t) in mine.iter().zip(&theirs) {
            assert_eq!((m.0, m.1, &m.2, &m.4.len()), (t.0, t.1, &t.2, &t.4.len()));
        }
        assert_eq!(
            mine.iter().map(|m| m.0).collect::<Vec<_>>(),
            [206, 206, 206, 206, 416]
        );
        assert_eq!(
            mine.iter().map(|m| m.1).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(mine[0].2, "bytes 100-199/8388608");
        assert_eq!(mine[0].4, file[100..200]);
        assert_eq!(mine[1].4, file[file.len() - 10..]);
        assert_eq!(mine[2].4, file[8_388_600..]);
        assert!(
            mine[3].3.starts_with("multipart/byteranges"),
            "{}",
            mine[3].3
        );
        let multi = &mine[3].4;
        let find = |needle: &[u8]| multi.windows(needle.len()).any(|w| w == needle);
        assert!(find(b"Content-Range: bytes 0-3/8388608"));
        assert!(find(b"Content-Range: bytes 1000-1003/8388608"));
        assert!(find(&file[0..4]) && find(&file[1000..1004]));
    });
}

/// `keepalive_timeout 1s`: six greenlets fetch a slow (rate-limited)
/// file at once, so the agent pools six connections; after 1.3 s idle
/// nginx has closed all six. Six greenlets then fetch at once again: all
/// succeed, each on a fresh connection (request 1 of a new nginx
/// connection), none fails on a stale one; then the same on std threads
/// for reference.
#[test]
fn nginx_keepalive_timeout_closes_every_pooled_connection() {
    let Some(ng) = nginx("kat", "keepalive_timeout 1s;", "") else {
        return;
    };
    bounded(|| {
        let agent = sylvan_agent(|c| {
            c.max_idle_connections_per_host(6)
                .timeout_global(Some(Duration::from_secs(3)))
        });
        let wave = |url: String| -> Vec<Got> {
            let gs: Vec<_> = (0..6)
                .map(|_| {
                    let (agent, url) = (agent.clone(), url.clone());
                    sylvan::spawn(move || get(&agent, &url))
                })
                .collect();
            gs.into_iter().map(|g| g.join().unwrap().unwrap()).collect()
        };
        let first = wave(ng.url("/slow/q.txt"));
        assert!(first.iter().all(|g| g.body.len() == 12_000));
        let pooled = distinct_conns(&first);
        eprintln!("first wave on {pooled} connections");
        assert!(pooled >= 3, "{pooled} connections");
        sylvan::sleep(Duration::from_millis(1300));
        let second = wave(ng.url("/a.txt"));
        let old: Vec<u64> = first.iter().map(|g| g.conn).collect();
        for g in &second {
            assert_eq!(g.body, b"hello nginx\n");
            assert!(!old.contains(&g.conn), "{} reused {old:?}", g.conn);
        }
        drop(agent);
        client_sockets_all_closed(ng.port());
    });
}

/// `keepalive_requests 3`: nginx closes each connection after its third
/// answer. Six greenlets × 15 requests on one agent all succeed (none
/// fails on a connection nginx just closed), no connection carries more
/// than 3, at least 30 connections were used; a std agent doing 15
/// requests in a row sees the same 1, 2, 3 pattern as a sylvan one.
#[test]
fn nginx_keepalive_requests_3_under_concurrency() {
    let Some(ng) = nginx("kr3", "keepalive_requests 3;", "") else {
        return;
    };
    bounded(|| {
        let (sy, st) = agents(|c| {
            c.max_idle_connections_per_host(6)
                .timeout_global(Some(Duration::from_secs(3)))
        });
        let url = ng.url("/a.txt");
        let u = url.clone();
        let theirs: Vec<Got> = on_std(st, move |a| (0..15).map(|_| get(a, &u).unwrap()).collect());
        let mine: Vec<Got> = (0..15).map(|_| get(&sy, &url).unwrap()).collect();
        let want: Vec<(u64, u64)> = (0..15).map(|i| (i / 3, i % 3 + 1)).collect();
        assert_eq!(shape(&theirs), want, "std");
        assert_eq!(shape(&mine), want, "sylvan");
        let gs: Vec<_> = (0..6)
            .map(|_| {
                let (agent, url) = (sy.clone(), url.clone());
                sylvan::spawn(move || (0..15).map(|_| get(&agent, &url)).collect::<Vec<_>>())
            })
            .collect();
        let all: Vec<Got> = gs
            .into_iter()
            .flat_map(|g| g.join().unwrap())
            .map(|r| r.expect("a request failed"))
            .collect();
        assert_eq!(all.len(), 90);
        assert!(all.iter().all(|g| g.body == b"hello nginx\n" && g.req <= 3));
        assert!(distinct_conns(&all) >= 30, "{}", distinct_conns(&all));
    });
}

/// `limit_rate 40k` trickles a 200 KB body; a sylvan `Timeout` of 300 ms
/// (not ureq's own) around the request and the read unwinds it on time,
/// while four other greenlets keep fetching small files on the same
/// agent (dozens of answers during those 300 ms). The abandoned
/// connection is closed, not pooled (the next requests succeed, and once
/// the agent is dropped no client socket to nginx stays open), and no
/// greenlet is left.
#[test]
fn nginx_limit_rate_body_under_a_sylvan_timeout() {
    let Some(ng) = nginx("rate", "", "") else {
        return;
    };
    bounded(|| {
        let alive = sylvan::stats().alive;
        let agent = sylvan_agent(|c| {
            c.max_idle_connections_per_host(8)
                .timeout_global(Some(Duration::from_secs(4)))
        });
        let stop = Rc::new(Cell::new(false));
        let fast: Vec<_> = (0..4)
            .map(|_| {
                let (agent, url, stop) = (agent.clone(), ng.url("/a.txt"), stop.clone());
                sylvan::spawn(move || {
                    let mut n = 0u32;
                    while !stop.get() && n < 5000 {
                        assert_eq!(get(&agent, &url).unwrap().body, b"hello nginx\n");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let slow = ng.url("/slow/s.txt");
        let t = Instant::now();
        let got = Rc::new(Cell::new(0usize));
        let g2 = got.clone();
        let r = sylvan::with_timeout(Duration::from_millis(300), || {
            let mut res = agent.get(&slow).call().unwrap();
            let mut r = res.body_mut().as_reader();
            let mut buf = [0u8; 4096];
            loop {
                let n = r.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                g2.set(g2.get() + n);
            }
        });
        let took = t.elapsed();
        stop.set(true);
        let n: u32 = fast.into_iter().map(|g| g.join().unwrap()).sum();
        eprintln!(
            "timeout after {took:?} with {} of 200000 bytes; {n} fast requests meanwhile",
            got.get()
        );
        assert!(r.is_err(), "the slow body finished in {took:?}");
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_millis(800),
            "{took:?}"
        );
        assert!(got.get() > 0 && got.get() < 200_000);
        assert!(n >= 20, "only {n} fast requests during the timeout");
        for _ in 0..5 {
            assert_eq!(
                get(&agent, &ng.url("/a.txt")).unwrap().body,
                b"hello nginx\n"
            );
        }
        drop(agent);
        client_sockets_all_closed(ng.port());
        assert_eq!(sylvan::stats().alive, alive);
    });
}

/// 100 greenlets share one agent, 5 requests each mixing a small file, a
/// gzipped 100 KB text and a 64 KB range of the 8 MiB file: all 500
/// answers right, then no greenlet and no client socket left.
#[test]
fn nginx_100_greenlets_share_one_agent() {
    let Some(ng) = nginx("share", "", "") else {
        return;
    };
    sylvan::with_timeout(Duration::from_secs(9), || {
        let file = Rc::new(big_bin());
        let words_len = 100_000;
        let alive = sylvan::stats().alive;
        let agent = sylvan_agent(|c| {
            c.max_idle_connections(100)
                .max_idle_connections_per_host(100)
                .timeout_global(Some(Duration::from_secs(4)))
        });
        let gs: Vec<_> = (0..100usize)
            .map(|i| {
                let (agent, file) = (agent.clone(), file.clone());
                let (a, w, b) = (ng.url("/a.txt"), ng.url("/w100k.txt"), ng.url("/big.bin"));
                sylvan::spawn(move || {
                    for j in 0..5usize {
                        match (i + j) % 5 {
                            0 => {
                                let g = get(&agent, &w).unwrap();
                                assert_eq!(g.body.len(), words_len);
                            }
                            1 | 2 => {
                                let off = ((i * 5 + j) % 128) * 65536;
                                let mut res = agent
                                    .get(&b)
                                    .header("Range", format!("bytes={off}-{}", off + 65535))
                                    .call()
                                    .unwrap();
                                assert_eq!(res.status(), 206);
                                let body = res.body_mut().read_to_vec().unwrap();
                                assert!(body == file[off..off + 65536], "range at {off}");
                            }
                            _ => assert_eq!(get(&agent, &a).unwrap().body, b"hello nginx\n"),
                        }
                    }
                })
            })
            .collect();
        let t = Instant::now();
        for g in gs {
            g.join().unwrap();
        }
        eprintln!("500 requests from 100 greenlets in {:?}", t.elapsed());
        drop(agent);
        client_sockets_all_closed(ng.port());
        assert_eq!(sylvan::stats().alive, alive);
    })
    .expect("test hung (hit its 9 s bound)");
}

// ---------------------------------------------------------------- real clients against sylvan servers

/// ApacheBench with keep-alive (`ab -k -n 5000 -c 100`, HTTP/1.0
/// `Connection: keep-alive`) against the responder behind a 200-greenlet
/// pool, in a child process: ab completes 5000 requests with no failure,
/// all kept alive over exactly 100 connections; the server counted 5000
/// requests; after ab exits every handler ends, no server socket stays
/// open, and after `stop` the process has the same descriptors and the
/// hub the same greenlets as before the server.
#[test]
fn ab_keepalive_5000_requests_concurrency_100() {
    if !have("ab") {
        return;
    }
    in_child(
        "probes28::ab_keepalive_5000_requests_concurrency_100",
        "p28-ab-k",
        || {
            let alive = sylvan::stats().alive;
            sylvan::spawn_blocking(|| ()); // the hub and the thread pool exist
            let fds = fd_count();
            let (server, counts, port) = http_server(200);
            let url = format!("http://127.0.0.1:{port}/size/100");
            let args: Vec<String> = ["-k", "-q", "-s", "5", "-n", "5000", "-c", "100", &url]
                .map(String::from)
                .to_vec();
            let out = run_prog(4, "ab", &args, Vec::new());
            let so = text(&out);
            assert!(out.status.success(), "ab failed");
            assert_eq!(num_after(&so, "Complete requests:"), 5000);
            assert_eq!(num_after(&so, "Failed requests:"), 0);
            assert_eq!(num_after(&so, "Keep-Alive requests:"), 5000);
            assert_eq!(num_after(&so, "Document Length:"), 100);
            handlers_gone(&server);
            assert_eq!(counts.requests.get(), 5000);
            assert_eq!(counts.connections.get(), 100);
            assert_eq!(server.accepted(), 100);
            server_sockets_all_closed(port);
            still_serves(port);
            server.stop(Some(Duration::from_secs(1)));
            drop(server);
            sylvan::sleep(Duration::from_millis(20));
            assert_eq!(sylvan::stats().alive, alive, "{}", sylvan::dump());
            assert_eq!(fd_count(), fds, "descriptors leaked");
        },
    );
}

/// ApacheBench without keep-alive (`ab -n 3000 -c 100`: a connection per
/// request, closed by the server after its answer): 3000 complete, none
/// failed, 3000 requests counted (plus the few connections ab opens and
/// never uses), every handler gone and no server socket left open.
#[test]
fn ab_3000_connections_concurrency_100() {
    if !have("ab") {
        return;
    }
    bounded(|| {
        let alive = sylvan::stats().alive;
        let (server, counts, port) = http_server(200);
        let url = format!("http://127.0.0.1:{port}/size/2000");
        let args: Vec<String> = ["-q", "-s", "5", "-n", "3000", "-c", "100", &url]
            .map(String::from)
            .to_vec();
        let out = run_prog(4, "ab", &args, Vec::new());
        let so = text(&out);
        assert!(out.status.success(), "ab failed");
        assert_eq!(num_after(&so, "Complete requests:"), 3000);
        assert_eq!(num_after(&so, "Failed requests:"), 0);
        handlers_gone(&server);
        eprintln!(
            "ab: 3000 complete; server: {} requests, {} accepted, {} finished, {} empty",
            counts.requests.get(),
            server.accepted(),
            counts.finished.get(),
            counts.empty.get()
        );
        // ab opens some connections near the end that it never uses (nginx
        // sees them too: its `$connection` numbers skip as many).
        assert_eq!(counts.requests.get(), 3000);
        assert_eq!(server.accepted(), 3000 + counts.empty.get());
        assert!(counts.empty.get() <= 200, "{} empty", counts.empty.get());
        assert_eq!(counts.finished.get(), server.accepted());
        server_sockets_all_closed(port);
        server.stop(Some(Duration::from_secs(1)));
        drop(server);
        sylvan::sleep(Duration::from_millis(20));
        assert_eq!(sylvan::stats().alive, alive);
    });
}

/// `wrk -t2 -c100 -d1s`: two threads keep 100 keep-alive connections
/// busy for a second, then drop them (with requests in flight). wrk
/// reports no socket errors and a request count the server's own count
/// covers; every handler ends, no server socket stays open, and the
/// server still answers a fresh client.
#[test]
fn wrk_100_connections_for_one_second() {
    if !have("wrk") {
        return;
    }
    bounded(|| {
        let (server, counts, port) = http_server(200);
        let url = format!("http://127.0.0.1:{port}/size/512");
        let args: Vec<String> = ["-t2", "-c100", "-d1s", "--timeout", "2s", &url]
            .map(String::from)
            .to_vec();
        let out = run_prog(4, "wrk", &args, Vec::new());
        let so = text(&out);
        assert!(out.status.success(), "wrk failed");
        let line = so
            .lines()
            .find(|l| l.contains("requests in"))
            .expect("wrk's summary");
        let n: u64 = line.split_whitespace().next().unwrap().parse().unwrap();
        assert!(!so.contains("Socket errors"), "wrk saw socket errors");
        assert!(!so.contains("Non-2xx"), "wrk saw bad answers");
        handlers_gone(&server);
        eprintln!(
            "wrk: {n} requests; server: {} requests on {} connections",
            counts.requests.get(),
            counts.connections.get()
        );
        assert!(n >= 1000, "only {n} requests in a second");
        assert!(counts.requests.get() >= n);
        assert!(
            counts.requests.get() <= n + 100,
            "more requests than wrk sent"
        );
        // wrk connects once more at start-up, to check the address.
        let conns = counts.connections.get();
        assert!((100..=101).contains(&conns), "{conns} connections");
        assert_eq!(counts.finished.get(), conns);
        server_sockets_all_closed(port);
        still_serves(port);
        server.stop(Some(Duration::from_secs(1)));
    });
}

/// Python sends 200 requests in one `sendall` (HTTP/1.1 pipelining, some
/// answers 256 KB so the server's writes park while the client is not
/// reading yet), then parses the answers in order with `http.client`'s
/// `HTTPResponse` on one buffered reader: all 200 arrive, in order, with
/// the right lengths; the last asks `Connection: close` and the server
/// closes. Meanwhile 10 Python threads make 30 requests each on their own
/// keep-alive `HTTPConnection`: 10 connections, 300 answers.
#[test]
fn python_http_client_pipelining_and_keep_alive() {
    if !have("python3") {
        return;
    }
    bounded(|| {
        let (server, counts, port) = http_server(50);
        let script = r#"
import http.client, socket, sys, threading
port = int(sys.argv[1])
def size(i): return 262144 if i % 50 == 7 else i * 13
reqs = b"".join(
    b"GET /size/%d HTTP/1.1\r\nHost: x\r\n%s\r\n"
    % (size(i), b"Connection: close\r\n" if i == 199 else b"")
    for i in range(200))
s = socket.create_connection(("127.0.0.1", port), timeout=4)
s.sendall(reqs)
f = s.makefile("rb")
class Keep:
    def __init__(self, f): self.f = f
    def __getattr__(self, n): return getattr(self.f, n)
    def close(self): pass
class Sock:
    def makefile(self, *a, **k): return Keep(f)
ok = 0
for i in range(200):
    r = http.client.HTTPResponse(Sock(), method="GET")
    r.begin()
    body = r.read()
    want = bytes(97 + j % 26 for j in range(size(i)))
    assert r.status == 200 and body == want, (i, r.status, len(body))
    ok += 1
assert f.read() == b"", "the server did not close after Connection: close"
print("pipelined", ok)
errs = []
def worker(t):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=4)
        for i in range(30):
            c.request("GET", "/t%d/%d" % (t, i))
            r = c.getresponse()
            assert r.read() == b"ok /t%d/%d\n" % (t, i)
        c.close()
    except Exception as e:
        errs.append(repr(e))
ts = [threading.Thread(target=worker, args=(t,)) for t in range(10)]
for t in ts: t.start()
for t in ts: t.join()
assert not errs, errs
print("threads ok")
"#;
        let out = run_prog(
            8,
            "python3",
            &["-c".into(), script.into(), port.to_string()],
            Vec::new(),
        );
        let so = text(&out);
        assert!(out.status.success(), "python failed");
        assert!(so.contains("pipelined 200") && so.contains("threads ok"));
        handlers_gone(&server);
        assert_eq!(counts.requests.get(), 500);
        assert_eq!(counts.connections.get(), 11);
        server_sockets_all_closed(port);
        server.stop(Some(Duration::from_secs(1)));
    });
}

/// 100 Python clients each ask for a 4 MB answer, read 20 KB of it and
/// go away, half with a FIN and half with a reset (`SO_LINGER 0`); curl
/// gives up on a 4 MB answer after `--max-filesize`; `nc` piped into
/// `head -c 100000` dies of SIGPIPE mid-body. Every handler's
/// parked write fails and ends it, nothing stays open on the server's
/// port, each request was counted, and `ab` then gets 500 full answers.
/// In a child process, so that the descriptor count is exact.
#[test]
fn clients_that_abort_mid_response() {
    if !have("python3") {
        return;
    }
    in_child(
        "probes28::clients_that_abort_mid_response",
        "p28-abort",
        || {
            let alive = sylvan::stats().alive;
            sylvan::spawn_blocking(|| ()); // the hub and the thread pool exist
            let fds = fd_count();
            let (server, counts, port) = http_server(150);
            let script = r#"
import socket, struct, sys, threading
port = int(sys.argv[1])
errs = []
def one(i):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=4)
        s.sendall(b"GET /size/4000000 HTTP/1.1\r\nHost: x\r\n\r\n")
        got = 0
        while got < 20000:
            b = s.recv(65536)
            assert b, "closed early"
            got += len(b)
        if i % 2:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    except Exception as e:
        errs.append(repr(e))
ts = [threading.Thread(target=one, args=(i,)) for i in range(100)]
for t in ts: t.start()
for t in ts: t.join()
assert not errs, errs
print("aborted 100")
"#;
            let out = run_prog(
                8,
                "python3",
                &["-c".into(), script.into(), port.to_string()],
                Vec::new(),
            );
            assert!(out.status.success() && text(&out).contains("aborted 100"));
            let mut expected = 100;
            if have("curl") {
                let url = format!("http://127.0.0.1:{port}/size/4000000");
                let args: Vec<String> = ["-s", "-o", "/dev/null", "--max-filesize", "1000", &url]
                    .map(String::from)
                    .to_vec();
                let out = run_prog(4, "curl", &args, Vec::new());
                assert_eq!(out.status.code(), Some(63), "curl's max-filesize exit code");
                expected += 1;
            }
            if have("nc") {
                // nc's output goes to `head -c 100000`, which exits:
                // nc dies of SIGPIPE mid-body, with data unread.
                let req = b"GET /size/4000000 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
                let cmd = format!("nc 127.0.0.1 {port} | head -c 100000");
                let out = run_prog(3, "sh", &["-c".into(), cmd], req);
                assert_eq!(out.stdout.len(), 100_000, "nc | head");
                expected += 1;
            }
            handlers_gone(&server);
            assert_eq!(counts.requests.get(), expected);
            assert_eq!(counts.finished.get(), expected);
            server_sockets_all_closed(port);
            if have("ab") {
                let url = format!("http://127.0.0.1:{port}/size/3000");
                let args: Vec<String> = ["-k", "-q", "-s", "5", "-n", "500", "-c", "50", &url]
                    .map(String::from)
                    .to_vec();
                let out = run_prog(4, "ab", &args, Vec::new());
                let so = text(&out);
                assert_eq!(num_after(&so, "Complete requests:"), 500);
                assert_eq!(num_after(&so, "Failed requests:"), 0);
                handlers_gone(&server);
            }
            still_serves(port);
            server.stop(Some(Duration::from_secs(1)));
            drop(server);
            sylvan::sleep(Duration::from_millis(20));
            assert_eq!(sylvan::stats().alive, alive, "{}", sylvan::dump());
            assert_eq!(fd_count(), fds, "descriptors leaked");
        },
    );
}

/// `socat` and `nc` as clients of an echo `StreamServer`: 20 socat
/// processes at once each pipe 1 MB through it (`shut-down` on end of
/// input: a half-close, after which the handler still echoes what is in
/// flight and then sees end of stream) and get back exactly what they
/// sent; `nc -N` sends an HTTP request to the responder, half-closes, and
/// prints the whole answer. No handler and no socket left behind.
#[test]
fn socat_and_nc_half_close_against_stream_servers() {
    if !have("socat") {
        return;
    }
    bounded(|| {
        let echo = StreamServer::bind("127.0.0.1:0", |conn: TcpStream, _| -> io::Result<()> {
            let mut buf = [0u8; 8192];
            loop {
                let n = (&conn).read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                (&conn).write_all(&buf[..n])?;
            }
        })
        .unwrap()
        .start()
        .unwrap();
        let port = echo.local_addr().unwrap().port();
        let gs: Vec<_> = (0..20u8)
            .map(|i| {
                sylvan::spawn(move || {
                    let data: Vec<u8> = (0..1_000_000u32).map(|j| (j as u8) ^ i).collect();
                    let args = vec![
                        "-b65536".to_owned(),
                        "-t2".to_owned(),
                        "-".to_owned(),
                        format!("TCP:127.0.0.1:{port},shut-down"),
                    ];
                    let out = run_prog(6, "socat", &args, data.clone());
                    assert!(out.status.success(), "socat {i} failed");
                    assert!(
                        out.stdout == data,
                        "socat {i}: {} bytes back",
                        out.stdout.len()
                    );
                })
            })
            .collect();
        for g in gs {
            g.join().unwrap();
        }
        assert_eq!(echo.accepted(), 20);
        handlers_gone(&echo);
        server_sockets_all_closed(port);
        echo.stop(Some(Duration::from_secs(1)));

        if have("nc") {
            let (server, counts, port) = http_server(10);
            let req = b"GET /size/300000 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
            let args: Vec<String> = ["-N", "127.0.0.1", &port.to_string()]
                .map(String::from)
                .to_vec();
            let out = run_prog(4, "nc", &args, req);
            let so = &out.stdout;
            let head_end = so
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .expect("a head")
                + 4;
            assert!(so.starts_with(b"HTTP/1.1 200 OK\r\n"));
            assert_eq!(so.len() - head_end, 300_000);
            assert!(
                so[head_end..]
                    .iter()
                    .enumerate()
                    .all(|(i, &b)| b == body_byte(i))
            );
            handlers_gone(&server);
            assert_eq!(counts.requests.get(), 1);
            server_sockets_all_closed(port);
            server.stop(Some(Duration::from_secs(1)));
        }
    });
}
