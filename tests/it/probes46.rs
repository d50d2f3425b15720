//! Probe round 46: sylvan against real peers that are not sylvan.
//!
//! * `StreamServer` under a crowd of Python asyncio clients at once (500
//!   echo clients that half-close, clients that connect and never send,
//!   slowloris clients sending a byte at a time, clients that reset with
//!   `SO_LINGER` 0), and a handler's read timeout meeting a client that
//!   trickles (each wait short) and one that stalls.
//! * The `echo_load` example against a Python asyncio echo server (and one
//!   that closes connections early), and its argument checking.
//! * `sylvan::ureq` against Python's `ThreadingHTTPServer` and raw socket
//!   servers: chunked bodies in thousands of small writes, a body far
//!   bigger than the buffers, responses arriving 1 to 9 bytes at a time
//!   (an 18 KB head, split chunk-size lines), redirect chains and loops,
//!   404/500, keep-alive reuse, a server that closes idle keep-alive
//!   connections, one that closes after a response without saying so, an
//!   unsolicited 408 landing on an idle pooled connection, a stalled server
//!   (the timeout fires and the hub runs on), 48 greenlets on one agent.
//! * curl fetching chunked responses that sylvan handlers stream, 40
//!   transfers in parallel over kept-alive connections.
//! * The crawler example against Python's `http.server` serving generated
//!   directory trees (broken links, a directory redirect, a slow page, a
//!   text file, out-of-scope links; 411 pages over HTTP/1.0), and stopped
//!   by SIGINT while its greenlets are parked on stalled pages or wait for
//!   a stalled robots.txt. The `hung_crawl` example's report and dump.
//!
//! Tools that are missing (python3, curl, an example binary not built) make
//! their test say so on stderr and pass. Every child process is killed by a
//! drop guard; every wait is bounded. Tests marked `BUG` show a defect and
//! fail without their `ignore`.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sylvan::net::{StreamServer, TcpStream};
use ureq::ResponseExt;

// ---------------------------------------------------------------- helpers

/// Whether `prog` runs; says so on stderr when it does not.
fn have(prog: &str) -> bool {
    let ok = Command::new(prog)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("{prog} is not installed: skipped");
    }
    ok
}

/// An example binary built next to this test binary, if built.
fn example_bin(name: &str) -> Option<PathBuf> {
    // target/<profile>/deps/it-<hash> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent()?.parent()?.join("examples").join(name);
    if !bin.exists() {
        eprintln!(
            "{} is not built: skipped (cargo build --examples)",
            bin.display()
        );
        return None;
    }
    Some(bin)
}

/// A child process (killed and reaped on drop) whose stdout lines arrive
/// on a channel, read by a std thread.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines }
    }

    /// The next stdout line, within `limit`.
    fn line(&self, limit: Duration) -> String {
        self.lines
            .recv_timeout(limit)
            .unwrap_or_else(|e| panic!("child printed no line within {limit:?}: {e}"))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a python3 server script that prints its port first; `None`
/// without python3.
fn py_server(script: &str, args: &[&str]) -> Option<(Proc, u16)> {
    if !have("python3") {
        return None;
    }
    let mut cmd = Command::new("python3");
    cmd.arg("-u").arg("-c").arg(script).args(args);
    let p = Proc::spawn(cmd);
    let first = p.line(Duration::from_secs(10));
    let port = first
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("the server prints its port first, not {first:?}"));
    Some((p, port))
}

/// Runs a python3 client script off the hub (the hub serves meanwhile),
/// bounded by coreutils `timeout 15`; its stdout.
fn py_client(script: &str, args: Vec<String>) -> String {
    let script = script.to_owned();
    let out = sylvan::with_timeout(Duration::from_secs(20), move || {
        sylvan::spawn_blocking(move || {
            Command::new("timeout")
                .args(["15", "python3", "-c"])
                .arg(script)
                .args(args)
                .output()
                .expect("run python3")
        })
    })
    .expect("python client hung");
    let so = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "python status {:?}\nstdout:\n{so}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    so
}

/// The value of `key=` in a line of `key=value` words.
fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in {out:?}"))
}

/// Parks (sleeping 10 ms at a time, the hub running) until `cond`, at most
/// `limit`.
fn wait_until(what: &str, limit: Duration, cond: impl Fn() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(
            t.elapsed() < limit,
            "never happened within {limit:?}: {what}"
        );
        sylvan::sleep(Duration::from_millis(10));
    }
}

/// Bytes that Python's `pat(n)` of [`HTTP_SERVER`] makes too.
fn pat(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i % 251) * 7 % 251) as u8).collect()
}

// ---------------------------------------------------------------- StreamServer vs asyncio

/// 580 Python asyncio connections at once against a plain `StreamServer`
/// echo: 40 connect and never send (held open all along), 500 echo up to
/// 64 KiB and half-close, 20 trickle 64 bytes a byte every 5 ms, 20 send
/// 100 KB and reset without reading. Every echo and trickle comes back
/// whole; once Python is gone, no handler greenlet is left.
#[test]
fn asyncio_crowd_with_idle_trickling_and_resetting_clients() {
    if !have("python3") {
        return;
    }
    crate::util::set_soft_limit(libc::RLIMIT_NOFILE, 1 << 16);
    let server = StreamServer::bind("127.0.0.1:0", crate::util::echo)
        .unwrap()
        .start()
        .unwrap();
    let port = server.local_addr().unwrap().port();
    let script = r#"
import asyncio, socket, struct, sys, time
port = int(sys.argv[1])
def data(i, n): return bytes(((i * 31 + j * 7) % 256 for j in range(n)))
async def echo(i):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    d = data(i, 1 + (i * 7919) % 65536)
    w.write(d); await w.drain(); w.write_eof()
    got = await r.read()
    w.close()
    return got == d
async def trickle(i):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    d = data(i, 64)
    for k in range(64):
        w.write(d[k:k+1]); await w.drain(); await asyncio.sleep(0.005)
    w.write_eof()
    got = await r.read()
    w.close()
    return got == d
async def reset(i):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(data(i, 100000)); await w.drain()
    await asyncio.sleep(0.05)
    s = w.get_extra_info("socket")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    w.transport.abort()
    return True
async def main():
    idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(40)]
    t0 = time.time()
    res = await asyncio.wait_for(asyncio.gather(
        *[echo(i) for i in range(500)],
        *[trickle(i) for i in range(20)],
        *[reset(i) for i in range(20)],
        return_exceptions=True), 12)
    secs = time.time() - t0
    bad = [repr(x) for x in res if x is not True]
    echo_ok = sum(1 for x in res[:500] if x is True)
    trickle_ok = sum(1 for x in res[500:520] if x is True)
    # the idle ones were never answered and are still open
    for r, w in idle:
        assert not r.at_eof()
        w.close()
    print("echo_ok=%d trickle_ok=%d secs=%.2f bad=%d %s" % (echo_ok, trickle_ok, secs, len(bad), bad[:3]))
asyncio.run(main())
"#;
    let out = py_client(script, vec![port.to_string()]);
    assert_eq!(field(&out, "echo_ok"), "500", "{out}");
    assert_eq!(field(&out, "trickle_ok"), "20", "{out}");
    assert_eq!(field(&out, "bad"), "0", "{out}");
    assert_eq!(server.accepted(), 580);
    wait_until(
        "every handler ended after its client left",
        Duration::from_secs(5),
        || server.handlers() == 0,
    );
    server.stop(Some(Duration::from_secs(1)));
}

/// A handler's read timeout bounds each wait, not the whole request: a
/// Python client sending a 40-byte line a byte every 20 ms (0.8 s in all,
/// each gap well under the 250 ms timeout) gets its answer, while one that
/// sends 3 bytes and stalls has its connection closed by the server after
/// about 250 ms; both at once, on one hub.
#[test]
fn read_timeout_per_wait_trickler_served_staller_dropped() {
    if !have("python3") {
        return;
    }
    let seen: Rc<RefCell<Vec<String>>> = Rc::default();
    let s2 = seen.clone();
    let server = StreamServer::bind("127.0.0.1:0", move |c: TcpStream, _| {
        c.set_read_timeout(Some(Duration::from_millis(250)))
            .unwrap();
        let mut r = BufReader::new(&c);
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(n) => {
                s2.borrow_mut().push(format!("ok:{n}"));
                let _ = (&c).write_all(format!("OK {n}\n").as_bytes());
            }
            Err(e) => s2.borrow_mut().push(format!("err:{:?}", e.kind())),
        }
    })
    .unwrap()
    .start()
    .unwrap();
    let port = server.local_addr().unwrap().port();
    let script = r#"
import socket, sys, threading, time
port = int(sys.argv[1]); out = {}
def trickler():
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    for b in b"x" * 39 + b"\n":
        s.send(bytes([b])); time.sleep(0.02)
    out["trickle"] = s.recv(100).decode().strip().replace(" ", "_")
def staller():
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.send(b"abc"); t = time.time()
    got = s.recv(100)
    out["stall"] = "eof" if got == b"" else repr(got)
    out["stall_secs"] = "%.3f" % (time.time() - t)
ts = [threading.Thread(target=f) for f in (trickler, staller)]
[t.start() for t in ts]; [t.join() for t in ts]
print(" ".join("%s=%s" % kv for kv in sorted(out.items())))
"#;
    let out = py_client(script, vec![port.to_string()]);
    assert_eq!(field(&out, "trickle"), "OK_40", "{out}");
    assert_eq!(field(&out, "stall"), "eof", "{out}");
    let secs: f64 = field(&out, "stall_secs").parse().unwrap();
    assert!(
        (0.2..1.5).contains(&secs),
        "the staller was dropped after {secs} s"
    );
    let mut seen = seen.borrow().clone();
    seen.sort();
    assert_eq!(seen, ["err:TimedOut", "ok:40"]);
    server.stop(Some(Duration::from_secs(1)));
}

// ---------------------------------------------------------------- echo_load vs asyncio

/// An asyncio echo server; with a positive argument it closes each
/// connection after echoing that many 64-byte messages.
const ASYNCIO_ECHO: &str = r#"
import asyncio, sys
limit = int(sys.argv[1]) * 64
async def handle(r, w):
    n = 0
    try:
        while True:
            b = await r.read(65536)
            if not b: break
            w.write(b); await w.drain(); n += len(b)
            if limit and n >= limit: break
    except ConnectionError:
        pass
    w.close()
async def main():
    srv = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await srv.serve_forever()
asyncio.run(main())
"#;

/// Runs `bin args` under coreutils `timeout 10` (the test thread blocks:
/// nothing of sylvan runs here meanwhile).
fn run_bounded(bin: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let t = Instant::now();
    let out = Command::new("timeout")
        .arg("10")
        .arg(bin)
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    eprintln!(
        "{} {args:?}: {:?} after {:?}\n{so}\n{se}",
        bin.display(),
        out.status,
        t.elapsed()
    );
    (out.status.code(), so, se)
}

/// `echo_load` (50 greenlets on one thread) against a Python asyncio echo
/// server: it measures and reports; against a server that closes each
/// connection after 20 round trips, it fails with a message and status 1
/// rather than hanging or panicking.
#[test]
fn echo_load_binary_against_python_asyncio_echo_servers() {
    let Some(bin) = example_bin("echo_load") else {
        return;
    };
    let Some((_server, port)) = py_server(ASYNCIO_ECHO, &["0"]) else {
        return;
    };
    let addr = format!("127.0.0.1:{port}");
    let (code, so, se) = run_bounded(&bin, &[&addr, "--conns", "50", "--secs", "0.5"]);
    assert_eq!(code, Some(0), "{se}");
    let line = so.lines().find(|l| l.starts_with("RESULT ")).expect(&so);
    assert_eq!(field(line, "conns"), "50");
    let rt: u64 = field(line, "rt").parse().unwrap();
    assert!(rt >= 50, "only {rt} round trips in 0.5 s: {line}");
    assert!(
        !field(line, "p50_us").contains("NaN") && !field(line, "p99_us").contains("NaN"),
        "{line}"
    );

    let Some((_closing, port)) = py_server(ASYNCIO_ECHO, &["20"]) else {
        return;
    };
    let addr = format!("127.0.0.1:{port}");
    let (code, _so, se) = run_bounded(&bin, &[&addr, "--conns", "10", "--secs", "2"]);
    assert_eq!(code, Some(1), "{se}");
    assert!(se.starts_with("echo_load: "), "{se}");
    assert!(!se.contains("panicked"), "{se}");
}

/// `echo_load` says that bad arguments "print as a message and the usage"
/// with status 2 (as `--conns x` does), also for a `--secs` that parses
/// as a float but is no duration (negative, NaN, infinite), which used to
/// panic in `Duration::from_secs_f64`.
#[test]
fn echo_load_rejects_a_secs_that_is_no_duration_with_the_usage() {
    let Some(bin) = example_bin("echo_load") else {
        return;
    };
    // A listener that never accepts: the connects complete in the backlog.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let (code, _, se) = run_bounded(&bin, &[&addr, "--conns", "x"]);
    assert_eq!(code, Some(2), "the reference: a bad --conns\n{se}");
    for secs in ["-1", "nan", "inf", "0"] {
        let (code, _, se) = run_bounded(&bin, &[&addr, "--conns", "1", "--secs", secs]);
        assert_eq!(code, Some(2), "--secs {secs}\n{se}");
        assert!(se.contains("usage: echo_load"), "--secs {secs}\n{se}");
    }
}

// ---------------------------------------------------------------- sylvan::ureq vs http.server

/// A `ThreadingHTTPServer` speaking HTTP/1.1 (keep-alive). Its first
/// argument is the idle keep-alive timeout in seconds (`none`: none).
const HTTP_SERVER: &str = r#"
import sys, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
from urllib.parse import urlparse, parse_qs
BASE = bytes((i * 7) % 251 for i in range(251))
def pat(n): return (BASE * (n // 251 + 1))[:n]
idle = None if sys.argv[1] == "none" else float(sys.argv[1])
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = idle
    def log_message(self, *a): pass
    def body(self, b, status=200, headers=()):
        self.send_response(status)
        self.send_header("Content-Length", str(len(b)))
        for k, v in headers: self.send_header(k, v)
        self.end_headers()
        self.wfile.write(b)
    def do_GET(self):
        u = urlparse(self.path); p = u.path
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        if p == "/port":
            self.body(str(self.client_address[1]).encode())
        elif p == "/chunked":
            n, size = int(q["n"]), int(q["size"])
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            data = pat(sum(1 + (i * 37) % size for i in range(n))); at = 0
            for i in range(n):
                k = 1 + (i * 37) % size
                self.wfile.write(b"%x\r\n%s\r\n" % (k, data[at:at + k])); at += k
            self.wfile.write(b"0\r\n\r\n")
        elif p == "/big":
            n = int(q["len"]); d = pat(n)
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            for i in range(0, n, 65536): self.wfile.write(d[i:i + 65536])
        elif p == "/redir":
            n = int(q["n"])
            if n == 0: self.body(b"landed")
            else: self.body(b"", 302, [("Location", "/redir?n=%d" % (n - 1))])
        elif p == "/loop":
            self.body(b"", 301, [("Location", "/loop")])
        elif p == "/status":
            self.body(b"status body", int(q["code"]))
        elif p == "/stall":
            time.sleep(30)
        elif p == "/close":
            # closes after the response, without a Connection: close
            self.close_connection = True
            self.body(str(self.client_address[1]).encode())
        elif p == "/echo":
            self.body(("%s from %d" % (q["x"], self.client_address[1])).encode())
        else:
            self.body(b"?", 404)
ThreadingHTTPServer.daemon_threads = True
# The default backlog of 5 can overflow when many connections arrive while
# the accepting thread waits for a core.
ThreadingHTTPServer.request_queue_size = 128
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

fn agent(global_timeout: Duration) -> ureq::Agent {
    sylvan::ureq::agent(
        ureq::Agent::config_builder()
            .timeout_global(Some(global_timeout))
            .build(),
    )
}

/// A GET's status and whole body (up to 16 MiB).
fn get_body(agent: &ureq::Agent, url: &str) -> Result<(u16, Vec<u8>), ureq::Error> {
    let mut res = agent.get(url).call()?;
    let status = res.status().as_u16();
    let body = res.body_mut().with_config().limit(16 << 20).read_to_vec()?;
    Ok((status, body))
}

/// A GET's body as text, panicking on failure.
fn text(agent: &ureq::Agent, url: &str) -> String {
    let (status, body) = get_body(agent, url).unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(status, 200, "GET {url}");
    String::from_utf8(body).unwrap()
}

/// Chunked bodies of 3,000 chunks of 1..700 bytes, each its own socket
/// write; a 6 MB body (far over the 16 KiB..128 KiB input buffer); a chain
/// of four redirects; a redirect loop; 404 and 500. All over kept-alive
/// connections of one agent.
#[test]
fn ureq_chunked_big_redirects_and_statuses_against_python() {
    let Some((_server, port)) = py_server(HTTP_SERVER, &["none"]) else {
        return;
    };
    let base = format!("http://127.0.0.1:{port}");
    let agent = agent(Duration::from_secs(8));
    let t = Instant::now();
    let (status, body) = get_body(&agent, &format!("{base}/chunked?n=3000&size=700")).unwrap();
    assert_eq!(status, 200);
    let total: usize = (0..3000).map(|i| 1 + (i * 37) % 700).sum();
    assert!(
        body == pat(total),
        "chunked: {} of {total} bytes",
        body.len()
    );

    let (_, body) = get_body(&agent, &format!("{base}/big?len=6000000")).unwrap();
    assert!(body == pat(6_000_000), "big: {} bytes", body.len());

    let res = agent.get(&format!("{base}/redir?n=4")).call().unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.get_uri().to_string(), format!("{base}/redir?n=0"));
    let mut res = res;
    assert_eq!(res.body_mut().read_to_string().unwrap(), "landed");

    let e = agent.get(&format!("{base}/loop")).call().unwrap_err();
    assert!(matches!(e, ureq::Error::TooManyRedirects), "{e:?}");
    for code in [404u16, 500] {
        let e = agent
            .get(&format!("{base}/status?code={code}"))
            .call()
            .unwrap_err();
        assert!(
            matches!(e, ureq::Error::StatusCode(c) if c == code),
            "{e:?}"
        );
    }
    // The connection survived all of that.
    assert!(!text(&agent, &format!("{base}/port")).is_empty());
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
}

/// Keep-alive against a server with an idle timeout of 300 ms: ten
/// requests in a row share one connection; after 700 ms idle the server
/// has closed it, and the next request goes out on a new connection
/// instead of failing on the dead one. A response after which the server
/// closes without a `Connection: close` header is followed, 300 ms later,
/// by a request that also takes a fresh connection.
#[test]
fn ureq_keep_alive_reuse_and_connections_the_server_closed() {
    let Some((_server, port)) = py_server(HTTP_SERVER, &["0.3"]) else {
        return;
    };
    let base = format!("http://127.0.0.1:{port}");
    let agent = agent(Duration::from_secs(5));
    let ports: BTreeSet<String> = (0..10)
        .map(|_| text(&agent, &format!("{base}/port")))
        .collect();
    assert_eq!(ports.len(), 1, "ten requests, one connection: {ports:?}");
    let first = ports.into_iter().next().unwrap();

    sylvan::sleep(Duration::from_millis(700));
    let after_idle = text(&agent, &format!("{base}/port"));
    assert_ne!(
        after_idle, first,
        "the idle connection was closed: a new one"
    );

    for round in 0..5 {
        let closed = text(&agent, &format!("{base}/close"));
        // Time for the server's handler thread to close it (a Python
        // thread on a loaded machine): the FIN must be in before the next
        // request checks the pooled connection.
        sylvan::sleep(Duration::from_millis(300));
        let next = text(&agent, &format!("{base}/port"));
        assert_ne!(next, closed, "round {round}: not the closed connection");
    }
}

/// A server that takes the request and never answers: the agent's
/// timeout fires (a ureq `Timeout`, within bounds), and all along another
/// greenlet keeps fetching from the same server and a ticker keeps
/// ticking: only the stalled greenlet was parked.
#[test]
fn ureq_stalled_server_times_out_and_the_hub_runs_on() {
    let Some((_server, port)) = py_server(HTTP_SERVER, &["none"]) else {
        return;
    };
    let base = format!("http://127.0.0.1:{port}");
    let stalled_agent = agent(Duration::from_millis(400));
    let busy_agent = agent(Duration::from_secs(5));
    let ticks = Rc::new(std::cell::Cell::new(0u32));
    let t2 = ticks.clone();
    let ticker = sylvan::spawn(move || {
        loop {
            sylvan::sleep(Duration::from_millis(10));
            t2.set(t2.get() + 1);
        }
    });
    let b2 = base.clone();
    let busy = sylvan::spawn(move || {
        let mut n = 0;
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(350) {
            text(&busy_agent, &format!("{b2}/echo?x={n}"));
            n += 1;
        }
        n
    });
    let t = Instant::now();
    let r = sylvan::with_timeout(Duration::from_secs(3), || {
        stalled_agent.get(&format!("{base}/stall")).call()
    })
    .expect("the agent's own timeout fires first");
    let took = t.elapsed();
    let e = r.unwrap_err();
    assert!(matches!(e, ureq::Error::Timeout(_)), "{e:?}");
    assert!(
        (Duration::from_millis(350)..Duration::from_millis(1500)).contains(&took),
        "timed out after {took:?}"
    );
    let fetched = busy.join().unwrap();
    assert!(fetched >= 5, "only {fetched} fetches while another stalled");
    assert!(
        ticks.get() >= 15,
        "the ticker ticked {} times in {took:?}",
        ticks.get()
    );
    ticker.kill();
}

/// 48 greenlets share one agent, 6 requests each, against the threaded
/// server: every answer is its own, and connections are reused (far fewer
/// than the 288 requests).
#[test]
fn ureq_48_greenlets_share_one_agent_against_python() {
    let Some((_server, port)) = py_server(HTTP_SERVER, &["none"]) else {
        return;
    };
    let base = format!("http://127.0.0.1:{port}");
    let agent = sylvan::ureq::agent(
        ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(8)))
            .max_idle_connections(64)
            .max_idle_connections_per_host(64)
            .build(),
    );
    let workers: Vec<_> = (0..48)
        .map(|g| {
            let agent = agent.clone();
            let base = base.clone();
            sylvan::spawn(move || {
                let mut ports = Vec::new();
                for k in 0..6 {
                    let x = format!("g{g}k{k}");
                    let t = text(&agent, &format!("{base}/echo?x={x}"));
                    let (got, port) = t.split_once(" from ").unwrap();
                    assert_eq!(got, x);
                    ports.push(port.to_owned());
                }
                ports
            })
        })
        .collect();
    let mut conns = BTreeSet::new();
    let ok = sylvan::joinall(&workers, Some(Duration::from_secs(10)));
    assert!(ok, "48 greenlets did not finish in 10 s");
    for w in workers {
        conns.extend(w.join().unwrap());
    }
    assert!(
        (1..=96).contains(&conns.len()),
        "{} connections for 288 requests",
        conns.len()
    );
}

// ---------------------------------------------------------------- curl vs a streaming handler

/// The chunk sizes of `/stream/{k}`.
fn stream_body(k: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for j in 0..100 {
        let n = 1 + (k * 131 + j * 17) % 3000;
        v.extend(std::iter::repeat_n(b'a' + ((k + j) % 26) as u8, n));
    }
    v
}

/// Keep-alive HTTP/1.1 handler answering `/stream/{k}` with a chunked body
/// of 100 chunks, one write each, sleeping 1 ms every 10 chunks.
fn streaming_handler(c: TcpStream, _peer: SocketAddr) {
    let mut r = BufReader::new(&c);
    loop {
        let mut path = String::new();
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            if path.is_empty() {
                path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
            }
        }
        let k: usize = path
            .strip_prefix("/stream/")
            .and_then(|k| k.parse().ok())
            .unwrap_or(0);
        let mut w = &c;
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                    Transfer-Encoding: chunked\r\n\r\n";
        if w.write_all(head.as_bytes()).is_err() {
            return;
        }
        let body = stream_body(k);
        let mut at = 0;
        for j in 0..100 {
            let n = 1 + (k * 131 + j * 17) % 3000;
            let mut chunk = format!("{n:x}\r\n").into_bytes();
            chunk.extend_from_slice(&body[at..at + n]);
            chunk.extend_from_slice(b"\r\n");
            at += n;
            if w.write_all(&chunk).is_err() {
                return;
            }
            if j % 10 == 9 {
                sylvan::sleep(Duration::from_millis(1));
            }
        }
        if w.write_all(b"0\r\n\r\n").is_err() {
            return;
        }
    }
}

/// curl `--parallel` fetches 40 streamed chunked responses (up to 20 at
/// once, connections kept alive): every file is exact.
#[test]
fn curl_parallel_fetches_of_streamed_chunked_responses() {
    if !have("curl") {
        return;
    }
    let server = StreamServer::bind("127.0.0.1:0", streaming_handler)
        .unwrap()
        .start()
        .unwrap();
    let addr = server.local_addr().unwrap();
    let dir = std::env::temp_dir().join(format!("sylvan-p46-curl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let d2 = dir.clone();
    let out = sylvan::with_timeout(Duration::from_secs(15), move || {
        sylvan::spawn_blocking(move || {
            Command::new("curl")
                .args(["-sS", "--http1.1", "--max-time", "10", "--parallel"])
                .args(["--parallel-max", "20"])
                .arg(format!("http://{addr}/stream/[1-40]"))
                .arg("-o")
                .arg(d2.join("f_#1"))
                .output()
                .unwrap()
        })
    })
    .expect("curl hung");
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for k in 1..=40 {
        let got = std::fs::read(dir.join(format!("f_{k}"))).unwrap();
        assert!(got == stream_body(k), "stream {k}: {} bytes", got.len());
    }
    assert!((1..=40).contains(&server.accepted()));
    let _ = std::fs::remove_dir_all(&dir);
    server.stop(Some(Duration::from_secs(1)));
}

// ---------------------------------------------------------------- the crawler vs http.server

/// `http.server`'s file handler over the directory `argv[1]`, speaking
/// HTTP/`argv[2]`, but `/slow.html` takes 3 s.
const FILE_SERVER: &str = r#"
import functools, sys, time
from http.server import ThreadingHTTPServer, SimpleHTTPRequestHandler
class H(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/" + sys.argv[2]
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path == "/slow.html":
            time.sleep(3)
        super().do_GET()
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer.request_queue_size = 128
s = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(H, directory=sys.argv[1]))
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

/// Writes the site: `(path, links)` pages, plus a text file.
fn write_site(dir: &Path) {
    let page = |path: &str, links: &[&str]| {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let body: String = links
            .iter()
            .map(|l| format!("<a href=\"{l}\">x</a>\n"))
            .collect();
        std::fs::write(
            p,
            format!("<!doctype html><html><body>\n{body}</body></html>\n"),
        )
        .unwrap();
    };
    page(
        "index.html",
        &[
            "a/",
            "a/p1.html",
            "a/p1.html#top",
            "./a/../a/p1.html",
            "b",
            "missing.html",
            "slow.html",
            "data.txt",
        ],
    );
    page("a/index.html", &["p1.html", "../b/deep/p3.html"]);
    page("a/p1.html", &["/data.txt", "mailto:x@example.com"]);
    page("b/index.html", &["p2.html", "gone/x.html", "deep/p3.html"]);
    page(
        "b/p2.html",
        &[
            "javascript:void(0)",
            "http://example.invalid/elsewhere",
            "/",
        ],
    );
    page("b/deep/p3.html", &["/", "../../a/"]);
    page("slow.html", &[]);
    std::fs::write(
        dir.join("data.txt"),
        "<a href=/not-a-link.html>plain text</a>",
    )
    .unwrap();
}

/// A page's status, error kind and redirect target.
type Outcome<'a> = (Option<u64>, Option<&'a str>, Option<&'a str>);

/// The crawler over a generated directory tree served by Python's
/// `http.server`: every reachable page once, the directory redirect as a
/// line of its own, broken links as `status` errors, the slow page as a
/// `timeout`, the text file not parsed, mailto/javascript/out-of-scope
/// links not fetched; the summary and `--stats` agree with the lines, and
/// the exit status is 0.
#[test]
fn crawler_against_python_http_server_directory_tree() {
    let Some(_) = example_bin("crawler") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("sylvan-p46-site-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    write_site(&dir);
    let Some((_server, port)) = py_server(FILE_SERVER, &[dir.to_str().unwrap(), "1.1"]) else {
        return;
    };
    let stats = dir.join("stats.json");
    let start = format!("http://127.0.0.1:{port}/");
    let run = crate::crawler2::run(
        &[
            &start,
            "-c",
            "4",
            "--timeout",
            "0.5",
            "--retries",
            "0",
            "--stats",
            stats.to_str().unwrap(),
        ],
        Duration::from_secs(15),
    );
    eprintln!("{}", run.stderr);
    assert!(run.status.is_some_and(|s| s.success()), "{:?}", run.status);
    let by = run.by_path();
    let summary: BTreeMap<&str, Outcome<'_>> = by
        .iter()
        .map(|(p, l)| {
            (
                p.as_str(),
                (
                    l["status"].as_u64(),
                    l["error"].as_str(),
                    l["redirect"].as_str(),
                ),
            )
        })
        .collect();
    let b_slash = format!("http://127.0.0.1:{port}/b/");
    let want: BTreeMap<&str, Outcome<'_>> = [
        ("/", (Some(200), None, None)),
        ("/a/", (Some(200), None, None)),
        ("/a/p1.html", (Some(200), None, None)),
        ("/b", (Some(301), None, Some(b_slash.as_str()))),
        ("/b/", (Some(200), None, None)),
        ("/b/p2.html", (Some(200), None, None)),
        ("/b/deep/p3.html", (Some(200), None, None)),
        ("/b/gone/x.html", (Some(404), Some("status"), None)),
        ("/missing.html", (Some(404), Some("status"), None)),
        ("/slow.html", (None, Some("timeout"), None)),
        ("/data.txt", (Some(200), None, None)),
    ]
    .into_iter()
    .collect();
    assert_eq!(summary, want);
    assert_eq!(by["/data.txt"]["links"], 0, "a text file is not parsed");
    assert!(run.stderr.contains("crawled 11 pages in"), "{}", run.stderr);
    assert!(
        run.stderr.contains("errors: 3 (status 2, timeout 1)"),
        "{}",
        run.stderr
    );
    let stats: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    assert_eq!(stats["pages"], 11);
    assert_eq!(
        stats["errors"],
        serde_json::json!({"status": 2, "timeout": 1})
    );
    assert_eq!(stats["interrupted"], false);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A server whose `/` links to 20 pages that each take 30 s (so does
/// `/robots.txt` when `argv[1]` is `robots`); it prints each request path.
const STALL_SERVER: &str = r#"
import sys, threading, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
stall_robots = sys.argv[1] == "robots"
# Handler threads print concurrently: print() writes the text and the
# newline separately, so unlocked lines interleave ("GOT /p/5GOT /p/6").
out = threading.Lock()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        with out:
            sys.stdout.write("GOT %s\n" % self.path)
            sys.stdout.flush()
        if self.path == "/":
            b = "".join("<a href=/p/%d>p</a>" % i for i in range(20)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(b)))
            self.end_headers(); self.wfile.write(b)
        elif self.path.startswith("/p/") or (stall_robots and self.path == "/robots.txt"):
            time.sleep(30)
        else:
            self.send_error(404)
ThreadingHTTPServer.daemon_threads = True
# The default backlog of 5 can overflow when many connections arrive while
# the accepting thread waits for a core.
ThreadingHTTPServer.request_queue_size = 128
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

/// What a crawler run stopped by SIGINT left.
struct Interrupted {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs the crawler (`-c 8`) on `paths` of a [`STALL_SERVER`] in `mode`,
/// sends it SIGINT once `ready` holds for the request lines the server
/// printed, and waits (at most 3 s) for it to exit.
fn crawl_then_sigint(
    mode: &str,
    paths: &[&str],
    ready: impl Fn(&[String]) -> bool,
) -> Option<Interrupted> {
    let bin = example_bin("crawler")?;
    let (server, port) = py_server(STALL_SERVER, &[mode])?;
    let mut child = Command::new(&bin)
        .args(paths.iter().map(|p| format!("http://127.0.0.1:{port}{p}")))
        .args(["--no-progress", "-c", "8", "--timeout", "20"])
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    /// Kills and reaps the crawler on every path.
    struct Reap<'a>(&'a mut Child);
    impl Drop for Reap<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut out = child.stdout.take().unwrap();
    let mut e = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = e.read_to_string(&mut s);
        s
    });
    let child = Reap(&mut child);
    // The crawl has installed its SIGINT handler before its first request.
    let mut seen = Vec::new();
    let t = Instant::now();
    while !ready(&seen) {
        let left = Duration::from_secs(20).saturating_sub(t.elapsed());
        let Ok(l) = server.lines.recv_timeout(left) else {
            drop(child);
            panic!(
                "the server saw {seen:?} in 20 s\ncrawler stdout: {}\nstderr: {}",
                t_out.join().unwrap(),
                t_err.join().unwrap()
            );
        };
        seen.push(l);
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.0.id() as libc::pid_t, libc::SIGINT) };
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "no exit 3 s after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = t_out.join().unwrap();
    let stderr = t_err.join().unwrap();
    eprintln!("{status:?}\n{stdout}\n{stderr}");
    Some(Interrupted {
        status,
        stdout,
        stderr,
    })
}

/// SIGINT while all 8 of the crawler's greenlets are parked reading from
/// a stalled server: it stops at once with status 130, the summary says
/// "interrupted" with the one page done, and stdout holds that page's
/// line (flushed, valid JSON).
#[test]
fn crawler_sigint_while_every_greenlet_waits_on_a_stalled_server() {
    let Some(r) = crawl_then_sigint("pages", &["/"], |seen| {
        seen.iter().filter(|l| l.starts_with("GOT /p/")).count() >= 8
    }) else {
        return;
    };
    assert_eq!(r.status.code(), Some(130), "{}", r.stderr);
    assert!(
        r.stderr.contains("interrupted: crawled 1 pages"),
        "{}",
        r.stderr
    );
    let lines: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{}", r.stdout);
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(lines[0]["links"], 20);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}

/// SIGINT while one greenlet fetches a robots.txt that never comes and
/// seven wait for its result (eight start URLs on one origin): the crawl
/// stops at once with status 130 and no page reported, nothing panics.
#[test]
fn crawler_sigint_while_greenlets_wait_for_a_stalled_robots_txt() {
    let starts = ["/s0", "/s1", "/s2", "/s3", "/s4", "/s5", "/s6", "/s7"];
    let Some(r) = crawl_then_sigint("robots", &starts, |seen| {
        seen.iter().any(|l| l == "GOT /robots.txt")
    }) else {
        return;
    };
    assert_eq!(r.status.code(), Some(130), "{}", r.stderr);
    assert!(
        r.stderr.contains("interrupted: crawled 0 pages"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout, "", "no page was done");
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}

/// 411 pages in ten directories, served by `http.server` speaking
/// HTTP/1.0 (a connection per request, closed by the server), crawled 16
/// at a time: every page once, all 200, no error.
#[test]
fn crawler_411_pages_over_http_1_0_connections_the_server_closes() {
    let Some(_) = example_bin("crawler") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("sylvan-p46-tree-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let page = |path: String, links: Vec<String>| {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let body: String = links
            .iter()
            .map(|l| format!("<a href='{l}'>x</a>"))
            .collect();
        std::fs::write(p, format!("<html><body>{body}</body></html>")).unwrap();
    };
    page(
        "index.html".into(),
        (0..10).map(|d| format!("d{d}/")).collect(),
    );
    for d in 0..10 {
        let mut links: Vec<String> = (0..40).map(|j| format!("p{j}.html")).collect();
        links.push("/".into());
        page(format!("d{d}/index.html"), links);
        for j in 0..40 {
            page(
                format!("d{d}/p{j}.html"),
                vec![
                    format!("p{}.html", (j + 1) % 40),
                    format!("../d{}/p{j}.html", (d + 1) % 10),
                    "../".into(),
                ],
            );
        }
    }
    let Some((_server, port)) = py_server(FILE_SERVER, &[dir.to_str().unwrap(), "1.0"]) else {
        return;
    };
    let start = format!("http://127.0.0.1:{port}/");
    let run = crate::crawler2::run(
        &[&start, "-c", "16", "--timeout", "5", "--retries", "0"],
        Duration::from_secs(20),
    );
    eprintln!("{}", run.stderr);
    assert!(run.status.is_some_and(|s| s.success()), "{:?}", run.status);
    let by = run.by_path();
    assert_eq!(by.len(), 411, "{:?}", by.keys().take(5).collect::<Vec<_>>());
    for (p, l) in &by {
        assert_eq!(l["status"], 200, "{p}: {l}");
        assert!(l["error"].is_null(), "{p}: {l}");
    }
    assert!(
        run.stderr.contains("crawled 411 pages in"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("errors: none"), "{}", run.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A raw server that answers each request, then 100 ms later sends an
/// unsolicited `408 Request Timeout` (as some servers do before closing an
/// idle connection) and, with `close`, closes; with `open`, it keeps the
/// connection open. Its bodies are the connection's client port.
const LATE_408_SERVER: &str = r#"
import socket, sys, threading, time
mode = sys.argv[1]
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(64)
print(s.getsockname()[1], flush=True)
def handle(c, port):
    f = c.makefile("rb")
    try:
        while True:
            line = f.readline()
            if not line: return
            while f.readline() not in (b"\r\n", b"\n", b""): pass
            body = str(port).encode()
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            time.sleep(0.1)
            c.sendall(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            if mode == "close":
                c.close(); return
    except OSError:
        pass
while True:
    c, a = s.accept()
    threading.Thread(target=handle, args=(c, a[1]), daemon=True).start()
"#;

/// After an unsolicited 408 lands on an idle pooled connection (closed
/// after it or not), the next request goes out on a new connection and
/// gets its own 200, never the stale 408.
#[test]
fn ureq_unsolicited_408_on_an_idle_connection_is_not_taken_for_the_answer() {
    for mode in ["close", "open"] {
        let Some((_server, port)) = py_server(LATE_408_SERVER, &[mode]) else {
            return;
        };
        let url = format!("http://127.0.0.1:{port}/");
        let agent = agent(Duration::from_secs(5));
        let mut ports = BTreeSet::new();
        for round in 0..3 {
            let (status, body) =
                get_body(&agent, &url).unwrap_or_else(|e| panic!("{mode}: round {round}: {e}"));
            assert_eq!(status, 200, "{mode}: round {round}");
            ports.insert(String::from_utf8(body).unwrap());
            sylvan::sleep(Duration::from_millis(300));
        }
        assert_eq!(ports.len(), 3, "{mode}: a new connection each time");
    }
}

/// The `hung_crawl` example does what its doc says: the blocking detector
/// names the greenlet that blocked the hub and its spawn site, and the
/// dump that follows shows each other greenlet and what it waits on.
#[test]
fn hung_crawl_example_names_the_culprit_and_dumps_the_others() {
    let Some(bin) = example_bin("hung_crawl") else {
        return;
    };
    let (code, so, se) = run_bounded(&bin, &[]);
    assert_eq!(code, Some(0), "{se}");
    assert!(
        se.contains("'parse-page' (spawned at examples/hung_crawl.rs:")
            && se.contains("has blocked the hub"),
        "{se}"
    );
    for name in ["fetch-0", "fetch-1", "fetch-2", "StreamServer"] {
        assert!(so.contains(name), "{name} missing from the dump:\n{so}");
    }
    let idle = so.lines().find(|l| l.contains("idle-worker")).expect(&so);
    assert!(idle.contains("a queue get"), "{idle}");
    assert!(
        !so.contains("parse-page"),
        "the culprit is dead by then:\n{so}"
    );
}

/// A raw server that sends each response in pieces of 1 to 9 bytes
/// (`TCP_NODELAY`): an 18 KB head of 60 headers (past the 16 KiB first
/// input buffer, so it grows while the head is incomplete), then a 50 KB
/// chunked body whose chunk-size lines and CRLFs are split across reads.
/// Keep-alive: each response's `X-Port` is the client's port.
const FRAGMENTING_SERVER: &str = r#"
import random, socket, threading, time
BASE = bytes((i * 7) % 251 for i in range(251))
def pat(n): return (BASE * (n // 251 + 1))[:n]
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(64)
print(s.getsockname()[1], flush=True)
def handle(c, port):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = c.makefile("rb"); rng = random.Random(port)
    try:
        while True:
            line = f.readline()
            if not line: return
            while f.readline() not in (b"\r\n", b"\n", b""): pass
            head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Port: %d\r\n" % port
            head += b"".join(b"X-H%d: %s\r\n" % (i, b"h" * 300) for i in range(60)) + b"\r\n"
            body = pat(50000); out = bytearray(head); at = 0
            while at < len(body):
                k = rng.randint(1, 1000)
                out += b"%x\r\n%s\r\n" % (len(body[at:at + k]), body[at:at + k]); at += k
            out += b"0\r\n\r\n"
            i = n = 0
            while i < len(out):
                k = rng.randint(1, 9); c.sendall(out[i:i + k]); i += k; n += 1
                if n % 200 == 0: time.sleep(0.001)
    except OSError:
        pass
while True:
    c, a = s.accept()
    threading.Thread(target=handle, args=(c, a[1]), daemon=True).start()
"#;

/// `sylvan::ureq` reads responses that arrive a few bytes at a time, head
/// and chunked body, twice on one kept-alive connection, while a ticker
/// keeps ticking.
#[test]
fn ureq_reads_responses_arriving_a_few_bytes_at_a_time() {
    let Some((_server, port)) = py_server(FRAGMENTING_SERVER, &[]) else {
        return;
    };
    let url = format!("http://127.0.0.1:{port}/");
    let agent = agent(Duration::from_secs(10));
    let ticks = Rc::new(std::cell::Cell::new(0u32));
    let t2 = ticks.clone();
    let ticker = sylvan::spawn(move || {
        loop {
            sylvan::sleep(Duration::from_millis(5));
            t2.set(t2.get() + 1);
        }
    });
    let mut ports = BTreeSet::new();
    for round in 0..2 {
        let mut res = agent
            .get(&url)
            .call()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(res.headers().len(), 62, "round {round}");
        assert_eq!(res.headers()["x-h59"].len(), 300);
        ports.insert(res.headers()["x-port"].to_str().unwrap().to_owned());
        let body = res.body_mut().read_to_vec().unwrap();
        assert!(body == pat(50_000), "round {round}: {} bytes", body.len());
    }
    assert_eq!(ports.len(), 1, "one kept-alive connection: {ports:?}");
    assert!(ticks.get() >= 5, "ticker ran {} times", ticks.get());
    ticker.kill();
}
