//! Probe round 22: sylvan driven by real clients and servers, as an outside
//! test suite would. `StreamServer` (and the `echo_server` example binary)
//! under Python clients opening hundreds of connections, `curl --parallel`
//! with keep-alive, half-closing clients, silent clients that vanish,
//! one-byte sends, a client resetting mid-write, `stop(timeout)` with live
//! clients, a handler stopping its own server, handler errors reported with
//! the peer; `sylvan::ureq` against nginx (`keepalive_requests 2`, an idle
//! `keepalive_timeout`, `Connection: close`, gzip and chunked bodies, HEAD,
//! 304 and 204, uploads, `Expect: 100-continue`, 413 before the body,
//! `limit_rate` trickling slower than the timeout), each compared with ureq
//! on std sockets; and plain `TcpStream` against Python servers that
//! half-close first, burst then reset, or reset at once, compared with
//! std's blocking sockets. External programs missing: the test says so and
//! passes. Tests marked `BUG` show a defect and fail without their `ignore`.

use std::cell::RefCell;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use sylvan::net::{StreamServer, TcpStream};

use crate::util::{
    Got, Nginx, NginxConf, agents, bounded, get, is_child, on_std, run_child, shape, summarize,
};

// ---------------------------------------------------------------- helpers

/// A child process (run under coreutils `timeout`): on drop it gets
/// SIGTERM (which `timeout` passes on), then SIGKILL, and is reaped.
struct Proc {
    child: Child,
    out: Option<BufReader<ChildStdout>>,
}

impl Proc {
    /// Runs `prog args` under `timeout 20`, stdout and stderr piped.
    fn spawn(prog: &str, args: &[&str]) -> Proc {
        let mut all = vec!["20", prog];
        all.extend_from_slice(args);
        Proc::spawn_raw("timeout", &all)
    }

    /// Runs `prog args` as it is (for a program that is sent signals:
    /// `timeout` would pass them on to its whole process group, so twice).
    fn spawn_raw(prog: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(prog)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn a child process");
        let out = child.stdout.take().map(BufReader::new);
        Proc { child, out }
    }

    /// The next line of the child's stdout, read off the hub (bounded).
    fn line(&mut self) -> String {
        let mut out = self.out.take().expect("stdout");
        let (out, line) = sylvan::with_timeout(Duration::from_secs(4), move || {
            sylvan::spawn_blocking(move || {
                let mut line = String::new();
                let _ = out.read_line(&mut line);
                (out, line)
            })
        })
        .expect("the child printed no line in 4 s");
        self.out = Some(out);
        line.trim_end().to_owned()
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the pid of our own unreaped child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        for _ in 0..200 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn have(prog: &str) -> bool {
    Command::new(prog)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A Python server script that prints its port first.
fn py_server(script: &str, args: &[&str]) -> (Proc, u16) {
    let mut a = vec!["-c", script];
    a.extend_from_slice(args);
    let mut p = Proc::spawn("python3", &a);
    let port = p.line().parse().expect("the server prints its port");
    (p, port)
}

/// Runs a Python client script (`timeout 8`) off the hub; returns its
/// output, printing it for a failing test.
fn py_client(script: &str, args: Vec<String>) -> Output {
    let script = script.to_owned();
    let out = sylvan::with_timeout(Duration::from_secs(9), move || {
        sylvan::spawn_blocking(move || {
            Command::new("timeout")
                .arg("8")
                .arg("python3")
                .arg("-c")
                .arg(script)
                .args(args)
                .stdin(Stdio::null())
                .output()
                .expect("run python3")
        })
    })
    .expect("python client hung");
    eprintln!(
        "python stdout:\n{}\npython stderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The value after `key=` in a `key=value` line of `out`.
fn field<'a>(out: &'a str, key: &str) -> &'a str {
    let pat = format!("{key}=");
    out.split_whitespace()
        .find_map(|w| w.strip_prefix(&pat))
        .unwrap_or_else(|| panic!("no {key}= in {out}"))
}

/// Reads request heads with `BufReader`; each gets `200` with the body
/// `path=<target> n=<requests on this connection>`, keep-alive unless the
/// client asked to close.
fn http_keep_alive(c: TcpStream, _peer: SocketAddr) {
    let mut r = BufReader::new(&c);
    let mut n = 0;
    loop {
        let mut first = String::new();
        match r.read_line(&mut first) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut close = false;
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            let l = line.to_ascii_lowercase();
            if l.starts_with("connection:") && l.contains("close") {
                close = true;
            }
            if let Some(v) = l.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body_in = vec![0u8; len];
        if r.read_exact(&mut body_in).is_err() {
            return;
        }
        n += 1;
        let target = first.split_whitespace().nth(1).unwrap_or("?").to_owned();
        let sum: u64 = body_in.iter().map(|&b| u64::from(b)).sum();
        let body = format!("path={target} n={n} len={len} sum={sum}\n");
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{body}",
            body.len(),
            if close { "Connection: close\r\n" } else { "" },
        );
        if (&c).write_all(resp.as_bytes()).is_err() || close {
            return;
        }
    }
}

fn echo_server_bin() -> Option<PathBuf> {
    // target/<profile>/deps/it-<hash> -> target/<profile>/examples/echo_server
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent()?.parent()?.join("examples").join("echo_server");
    bin.exists().then_some(bin)
}

// ---------------------------------------------------------------- StreamServer

/// The `echo_server` example as a process: 300 Python connections open at
/// once, each echoing its own payload through a selector loop, then closed
/// half with a FIN and half with a reset; a connection made afterwards
/// still echoes, and SIGINT stops the server with exit status 0 and the
/// number of connections served.
#[test]
fn echo_server_binary_300_concurrent_python_connections_then_sigint() {
    let Some(bin) = echo_server_bin() else {
        eprintln!("echo_server example not built (cargo build --example echo_server): skipped");
        return;
    };
    bounded(|| {
        let mut server = Proc::spawn_raw(bin.to_str().unwrap(), &["127.0.0.1:0"]);
        let first = server.line();
        let addr = first
            .strip_prefix("listening on ")
            .expect(&first)
            .to_owned();
        let port = addr.rsplit(':').next().unwrap().to_owned();
        let out = py_client(
            r#"
import os, selectors, socket, struct, sys, time
port = int(sys.argv[1]); N = 300
socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(N)]
data = [os.urandom(2000 + 97 * i) for i in range(N)]
sent = [0] * N; got = [bytearray() for _ in range(N)]
sel = selectors.DefaultSelector()
for i, s in enumerate(socks):
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, i)
left = N; deadline = time.time() + 6
while left and time.time() < deadline:
    for key, ev in sel.select(0.5):
        i = key.data; s = socks[i]
        if ev & selectors.EVENT_WRITE:
            if sent[i] < len(data[i]):
                sent[i] += s.send(data[i][sent[i]:sent[i] + 4096])
            if sent[i] == len(data[i]):
                sel.modify(s, selectors.EVENT_READ, i)
        if ev & selectors.EVENT_READ:
            b = s.recv(65536)
            got[i] += b
            if not b or len(got[i]) >= len(data[i]):
                sel.unregister(s); left -= 1
ok = sum(1 for i in range(N) if bytes(got[i]) == data[i])
for i, s in enumerate(socks):
    if i % 2:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
s = socket.create_connection(("127.0.0.1", port), timeout=3)
s.sendall(b"after"); after = s.recv(100); s.close()
print("ok=%d after=%s" % (ok, after.decode()))
"#,
            vec![port],
        );
        let so = stdout_of(&out);
        assert_eq!(field(&so, "ok"), "300", "{so}");
        assert_eq!(field(&so, "after"), "after", "{so}");
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(server.child.id() as libc::pid_t, libc::SIGINT) };
        let t = Instant::now();
        while !server.exited() {
            assert!(t.elapsed() < Duration::from_secs(3), "no exit after SIGINT");
            sylvan::sleep(Duration::from_millis(10));
        }
        let status = server.child.wait().unwrap();
        let mut err = String::new();
        server
            .child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(status.success(), "{status:?}\n{err}");
        assert!(err.contains("stopping: 301 connections served"), "{err}");
        assert!(!err.contains("failed"), "{err}");
    });
}

/// curl with `--parallel` (up to 8 transfers at once, connections kept
/// alive and reused) fetches 60 URLs from a keep-alive server: every body
/// arrives, and connections carry several requests each.
#[test]
fn curl_parallel_keep_alive_60_transfers() {
    if !have("curl") {
        eprintln!("no curl: skipped");
        return;
    }
    bounded(|| {
        let server = StreamServer::bind("127.0.0.1:0", http_keep_alive)
            .unwrap()
            .start()
            .unwrap();
        let addr = server.local_addr().unwrap();
        let urls: Vec<String> = (0..60).map(|i| format!("http://{addr}/u{i}")).collect();
        let out = sylvan::spawn_blocking(move || {
            Command::new("timeout")
                .args(["8", "curl", "-sS", "--parallel", "--parallel-max", "8"])
                .args(["--max-time", "4"])
                .args(&urls)
                .output()
                .unwrap()
        });
        let so = stdout_of(&out);
        eprintln!("{so}\n{}", String::from_utf8_lossy(&out.stderr));
        if String::from_utf8_lossy(&out.stderr).contains("--parallel") {
            eprintln!("curl without --parallel: skipped");
            return;
        }
        assert!(out.status.success(), "{:?}", out.status);
        for i in 0..60 {
            assert!(
                so.lines().any(|l| l.starts_with(&format!("path=/u{i} "))),
                "/u{i} missing"
            );
        }
        let accepted = server.accepted();
        assert!((1..=30).contains(&accepted), "{accepted} connections");
        assert!(so.lines().any(|l| field(l, "n") != "1"), "no reuse");
        server.stop(Some(Duration::from_secs(1)));
        assert_eq!(server.handlers(), 0);
    });
}

/// 40 Python clients each send 300 KB, half-close (`shutdown(SHUT_WR)`)
/// and read the reply to end of stream; the handler reads to end of stream
/// first, then answers with the data reversed and a trailer. Every client
/// gets its whole reply.
#[test]
fn half_closing_clients_get_the_whole_reply() {
    bounded(|| {
        let server = StreamServer::bind("127.0.0.1:0", |c: TcpStream, _| -> io::Result<()> {
            let mut data = Vec::new();
            (&c).read_to_end(&mut data)?;
            data.reverse();
            (&c).write_all(&data)?;
            (&c).write_all(format!("END {}", data.len()).as_bytes())?;
            Ok(())
        })
        .unwrap()
        .start()
        .unwrap();
        let port = server.local_addr().unwrap().port();
        let out = py_client(
            r#"
import os, socket, sys, threading
port = int(sys.argv[1]); bad = []
def one(i):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        data = os.urandom(300000)
        s.sendall(data); s.shutdown(socket.SHUT_WR)
        got = bytearray()
        while True:
            b = s.recv(65536)
            if not b: break
            got += b
        s.close()
        if bytes(got) != data[::-1] + b"END 300000": bad.append((i, len(got)))
    except Exception as e:
        bad.append((i, repr(e)))
ts = [threading.Thread(target=one, args=(i,)) for i in range(40)]
[t.start() for t in ts]; [t.join() for t in ts]
print("bad=%d" % len(bad), bad[:3])
"#,
            vec![port.to_string()],
        );
        assert_eq!(field(&stdout_of(&out), "bad"), "0");
        assert_eq!(server.accepted(), 40);
        server.stop(Some(Duration::from_secs(1)));
    });
}

/// 200 Python clients connect and go away without sending a byte, half of
/// them with a reset. Each handler's first read ends at once: end of
/// stream after a FIN, `ConnectionReset` after a reset (as a blocking
/// `std` read), never its 2 s read timeout; no handler is left behind.
#[test]
fn silent_clients_that_vanish_end_their_handlers_at_once() {
    bounded(|| {
        let seen: Rc<RefCell<Vec<String>>> = Rc::default();
        let s2 = seen.clone();
        let server = StreamServer::bind("127.0.0.1:0", move |c: TcpStream, _| {
            c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let t = Instant::now();
            let mut b = [0u8; 16];
            let what = match (&c).read(&mut b) {
                Ok(0) => "eof".to_owned(),
                Ok(n) => format!("data {n}"),
                Err(e) => format!("{:?}", e.kind()),
            };
            s2.borrow_mut()
                .push(format!("{what} {}", t.elapsed().as_millis() / 500));
        })
        .unwrap()
        .start()
        .unwrap();
        let port = server.local_addr().unwrap().port();
        let out = py_client(
            r#"
import socket, struct, sys
port = int(sys.argv[1])
for i in range(200):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    if i % 2:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
print("done")
"#,
            vec![port.to_string()],
        );
        assert!(stdout_of(&out).contains("done"));
        let t = Instant::now();
        while seen.borrow().len() < 200 {
            assert!(
                t.elapsed() < Duration::from_millis(1500),
                "{:?}",
                seen.borrow()
            );
            sylvan::sleep(Duration::from_millis(5));
        }
        let seen = seen.borrow();
        let eof = seen.iter().filter(|s| *s == "eof 0").count();
        let reset = seen.iter().filter(|s| *s == "ConnectionReset 0").count();
        assert_eq!((eof, reset), (100, 100), "{seen:?}");
        assert_eq!(server.accepted(), 200);
        assert_eq!(server.handlers(), 0);
        server.stop(Some(Duration::from_secs(1)));
    });
}

/// A Python client sends two pipelined requests (the second with a body)
/// one byte per `send`, `TCP_NODELAY` on: the `BufReader` handler on a
/// sylvan socket answers both, in order, on one connection.
#[test]
fn requests_sent_one_byte_at_a_time_and_pipelined() {
    bounded(|| {
        let server = StreamServer::bind("127.0.0.1:0", http_keep_alive)
            .unwrap()
            .start()
            .unwrap();
        let port = server.local_addr().unwrap().port();
        let out = py_client(
            r#"
import socket, sys, time
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), timeout=4)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
body = bytes(range(200))
req = (b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n"
       b"POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\nConnection: close\r\n\r\n" + body)
for i in range(len(req)):
    s.send(req[i:i + 1])
    if i % 8 == 0: time.sleep(0.001)
got = b""
while True:
    b = s.recv(4096)
    if not b: break
    got += b
print(got.decode().replace("\r\n", "|"))
"#,
            vec![port.to_string()],
        );
        let so = stdout_of(&out);
        let one = so.find("path=/one n=1 len=0 sum=0").expect(&so);
        let sum: u32 = (0..200).sum();
        let two = so
            .find(&format!("path=/two n=2 len=200 sum={sum}"))
            .expect(&so);
        assert!(one < two);
        assert!(so.contains("Connection: close"), "{so}");
        assert_eq!(server.accepted(), 1);
        server.stop(Some(Duration::from_secs(1)));
    });
}

/// A Python client reads 100 KB of a 64 MB reply, then closes with
/// `SO_LINGER 0` (a reset). The handler's parked `write_all` fails with
/// `ConnectionReset` or `BrokenPipe` (as a blocking `std` write; no
/// SIGPIPE), promptly, and the handler is gone.
#[test]
fn client_reset_mid_write_fails_the_handlers_write() {
    bounded(|| {
        let result: Rc<RefCell<Option<(io::ErrorKind, usize)>>> = Rc::default();
        let r2 = result.clone();
        let server = StreamServer::bind("127.0.0.1:0", move |c: TcpStream, _| {
            let mut b = [0u8; 3];
            (&c).read_exact(&mut b).unwrap();
            let chunk = vec![b'z'; 64 << 10];
            let mut sent = 0;
            let kind = loop {
                if sent >= 64 << 20 {
                    break io::ErrorKind::Other;
                }
                match (&c).write_all(&chunk) {
                    Ok(()) => sent += chunk.len(),
                    Err(e) => break e.kind(),
                }
            };
            *r2.borrow_mut() = Some((kind, sent));
        })
        .unwrap()
        .start()
        .unwrap();
        let port = server.local_addr().unwrap().port();
        let out = py_client(
            r#"
import socket, struct, sys
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), timeout=4)
s.sendall(b"go\n")
got = 0
while got < 100000:
    got += len(s.recv(65536))
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
print("read=%d" % got)
"#,
            vec![port.to_string()],
        );
        assert!(stdout_of(&out).contains("read="));
        let t = Instant::now();
        while result.borrow().is_none() {
            assert!(t.elapsed() < Duration::from_secs(1), "writer never failed");
            sylvan::sleep(Duration::from_millis(2));
        }
        let (kind, sent) = result.borrow().unwrap();
        eprintln!("handler write: {kind:?} after {sent} bytes");
        assert!(
            matches!(
                kind,
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            ),
            "{kind:?}"
        );
        assert!(sent < 32 << 20);
        assert_eq!(server.handlers(), 0);
        server.stop(Some(Duration::from_secs(1)));
    });
}

/// `stop(Some(400 ms))` with three live Python clients: one whose handler
/// finishes within the grace (it gets its answer), one idle in a read and
/// one whose handler is parked writing to a client that does not read
/// (both killed after the grace: their clients read what was sent, then
/// end of stream). `stop` takes the grace, not more, and new connections
/// are refused.
#[test]
fn stop_with_live_python_clients_graceful_then_kill() {
    bounded(|| {
        let server = StreamServer::bind("127.0.0.1:0", |c: TcpStream, _| -> io::Result<()> {
            let mut line = String::new();
            BufReader::new(&c).read_line(&mut line)?;
            match line.trim() {
                "slow" => {
                    sylvan::sleep(Duration::from_millis(150));
                    (&c).write_all(b"done\n")?;
                }
                "idle" => {
                    (&c).write_all(b"ready\n")?;
                    let mut rest = Vec::new();
                    (&c).read_to_end(&mut rest)?;
                }
                _ => {
                    let chunk = vec![b'f'; 64 << 10];
                    for _ in 0..1024 {
                        (&c).write_all(&chunk)?;
                    }
                }
            }
            Ok(())
        })
        .unwrap()
        .start()
        .unwrap();
        let port = server.local_addr().unwrap().port();
        let client = sylvan::spawn(move || {
            py_client(
                r#"
import socket, sys, time
port = int(sys.argv[1])
def conn(cmd):
    s = socket.create_connection(("127.0.0.1", port), timeout=4)
    s.sendall(cmd + b"\n"); return s
def drain(s):
    got = b""; how = "eof"
    try:
        while True:
            b = s.recv(1 << 20)
            if not b: break
            got += b
    except ConnectionResetError:
        how = "reset"
    return got, how
idle = conn(b"idle"); assert idle.recv(6) == b"ready\n"
flood = conn(b"flood"); slow = conn(b"slow")
print("connected", flush=True)
got, how = drain(slow)
print("slow=%s/%s" % (got.decode().strip(), how))
t = time.time(); got, how = drain(idle)
print("idle=%s/%s" % (len(got), how))
time.sleep(0.1)
got, how = drain(flood)
print("flood=%s/%s clean=%s" % (how, len(got) < 64 << 20, set(got) <= {ord("f")}))
"#,
                vec![port.to_string()],
            )
        });
        let t = Instant::now();
        while server.handlers() < 3 {
            assert!(t.elapsed() < Duration::from_secs(3), "clients never came");
            sylvan::sleep(Duration::from_millis(2));
        }
        let t = Instant::now();
        server.stop(Some(Duration::from_millis(400)));
        let took = t.elapsed();
        let out = stdout_of(&client.join().unwrap());
        assert!(
            took >= Duration::from_millis(380) && took < Duration::from_millis(1200),
            "stop took {took:?}"
        );
        assert_eq!(field(&out, "slow"), "done/eof", "{out}");
        assert_eq!(field(&out, "idle"), "0/eof", "{out}");
        assert_eq!(field(&out, "flood"), "eof/True", "{out}");
        assert_eq!(field(&out, "clean"), "True", "{out}");
        assert_eq!(server.handlers(), 0);
        let e = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
    });
}

/// A handler stops its own server (`QUIT`) and then answers: its client
/// gets the answer, an idle client is closed after the grace, and
/// `serve_forever` in main returns `Ok`.
#[test]
fn a_handler_stops_its_own_server_then_answers_its_python_client() {
    bounded(|| {
        let me: Rc<RefCell<Option<StreamServer>>> = Rc::default();
        let me2 = me.clone();
        let server = StreamServer::bind("127.0.0.1:0", move |c: TcpStream, _| -> io::Result<()> {
            let mut r = BufReader::new(&c);
            let mut line = String::new();
            r.read_line(&mut line)?;
            if line.trim() == "QUIT" {
                let server = me2.borrow_mut().take().expect("one QUIT");
                server.stop(Some(Duration::from_millis(200)));
                (&c).write_all(format!("bye handlers={}\n", server.handlers()).as_bytes())?;
            } else {
                (&c).write_all(b"held\n")?;
                let mut rest = String::new();
                r.read_to_string(&mut rest)?;
            }
            Ok(())
        })
        .unwrap();
        *me.borrow_mut() = Some(server.clone());
        let port = server.local_addr().unwrap().port();
        let client = sylvan::spawn(move || {
            py_client(
                r#"
import socket, sys, time
port = int(sys.argv[1])
a = socket.create_connection(("127.0.0.1", port), timeout=4)
a.sendall(b"hold\n"); assert a.recv(5) == b"held\n"
b = socket.create_connection(("127.0.0.1", port), timeout=4)
t = time.time(); b.sendall(b"QUIT\n")
print("a=%r" % a.recv(10), "after=%.1f" % (time.time() - t))
reply = b""
while True:
    x = b.recv(100)
    if not x: break
    reply += x
print("b=" + reply.decode().strip().replace(" ", "_"))
"#,
                vec![port.to_string()],
            )
        });
        let t = Instant::now();
        server.serve_forever().unwrap();
        assert!(t.elapsed() < Duration::from_secs(3));
        let out = stdout_of(&client.join().unwrap());
        assert_eq!(field(&out, "a"), "b''", "{out}");
        assert_eq!(field(&out, "b"), "bye_handlers=1", "{out}");
        let after: f64 = field(&out, "after").parse().unwrap();
        assert!((0.1..1.0).contains(&after), "{out}");
        assert_eq!(server.accepted(), 2);
        assert_eq!(server.handlers(), 0);
    });
}

/// A handler returning `Err` is reported once on stderr with the peer's
/// address (the documented `HandlerResult`), one that returns `Ok` is not,
/// and the server goes on serving. In a child process, to read its stderr.
#[test]
fn handler_errors_are_reported_with_the_peer_address() {
    const NAME: &str = "p22-handler-err";
    if !is_child(NAME) {
        let out = run_child(
            "probes22::handler_errors_are_reported_with_the_peer_address",
            NAME,
        );
        let so = stdout_of(&out);
        let se = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success() && so.contains("PROBE ok"),
            "{so}\n{se}"
        );
        let ports = so
            .split("PORTS ")
            .nth(1)
            .and_then(|r| r.lines().next())
            .expect(&so)
            .to_owned();
        let ports: Vec<&str> = ports.split_whitespace().collect();
        let failed: Vec<&str> = se.lines().filter(|l| l.contains("failed")).collect();
        assert_eq!(failed.len(), 2, "{se}");
        assert!(
            failed.iter().any(|l| l.contains(&format!(
                "sylvan: StreamServer handler for 127.0.0.1:{} failed: bad request: bad 7",
                ports[1]
            ))),
            "{se}"
        );
        assert!(
            failed
                .iter()
                .any(|l| l.contains(&format!("127.0.0.1:{} failed:", ports[2]))
                    && l.to_lowercase().contains("reset")),
            "{se}"
        );
        assert!(!se.contains(&format!(":{} ", ports[0])), "{se}");
        return;
    }
    bounded(|| {
        let server = StreamServer::bind("127.0.0.1:0", |c: TcpStream, _| -> io::Result<()> {
            let mut line = String::new();
            BufReader::new(&c).read_line(&mut line)?;
            if line.starts_with("bad") {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad request: {}", line.trim()),
                ));
            }
            (&c).write_all(b"ok\n")?;
            Ok(())
        })
        .unwrap()
        .start()
        .unwrap();
        let port = server.local_addr().unwrap().port();
        let out = py_client(
            r#"
import socket, struct, sys, time
port = int(sys.argv[1]); ports = []
a = socket.create_connection(("127.0.0.1", port), timeout=4)
ports.append(a.getsockname()[1]); a.sendall(b"good\n"); assert a.recv(3) == b"ok\n"; a.close()
b = socket.create_connection(("127.0.0.1", port), timeout=4)
ports.append(b.getsockname()[1]); b.sendall(b"bad 7\n"); assert b.recv(3) == b""; b.close()
c = socket.create_connection(("127.0.0.1", port), timeout=4)
ports.append(c.getsockname()[1]); time.sleep(0.05)
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); c.close()
time.sleep(0.05)
d = socket.create_connection(("127.0.0.1", port), timeout=4)
d.sendall(b"again\n"); assert d.recv(3) == b"ok\n"
print("PORTS", *ports)
"#,
            vec![port.to_string()],
        );
        let so = stdout_of(&out);
        let line = so.lines().find(|l| l.starts_with("PORTS ")).expect(&so);
        println!("{line}");
        assert_eq!(server.accepted(), 4);
        server.stop(Some(Duration::from_secs(1)));
    });
    println!("PROBE ok");
}

// ---------------------------------------------------------------- ureq against nginx

/// The `http` block of the probes' nginx (after the common frame of
/// [`util::Nginx`]).
const HTTP: &str = r#"access_log off;
  default_type text/plain;
  gzip on; gzip_types text/plain; gzip_min_length 20;"#;

/// The `server` block of the probes' nginx (after its `listen` and `root`).
const SERVER: &str = r#"add_header X-Conn "$connection/$connection_requests" always;
    location = /204 { return 204; }
    location = /upload { client_max_body_size 20m; return 200 "ok\n"; }
    location = /small { client_max_body_size 1k; return 200 "ok\n"; }
    location /slow/ { gzip off; limit_rate 8k; }"#;

/// `big.txt`: 3 MB of numbered text lines.
fn big_text() -> Vec<u8> {
    let mut v = Vec::with_capacity(3 << 20);
    let mut i = 0;
    while v.len() < 3 << 20 {
        writeln!(v, "line {i:07} the quick brown fox jumps over the lazy dog").unwrap();
        i += 1;
    }
    v
}

/// `mid.txt`: 200 KB that gzip shrinks only a little.
fn mid_bytes() -> Vec<u8> {
    let mut x: u32 = 12345;
    (0..200_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            b'a' + ((x >> 16) % 26) as u8
        })
        .collect()
}

/// nginx serving `a.txt`, `big.txt`, `mid.txt` and `slow/s.txt`, with
/// `http_extra` in its `http` block and `server_extra` in its `server`
/// block; `None` (and a line saying so) without nginx.
fn nginx(tag: &str, http_extra: &str, server_extra: &str) -> Option<Nginx> {
    let conf = NginxConf {
        worker_connections: 512,
        ports: 1,
        http: &format!("{HTTP}\n  {http_extra}"),
        server: &format!("{SERVER}\n    {server_extra}"),
    };
    Nginx::start(&format!("p22-{tag}"), &conf, |www| {
        std::fs::create_dir_all(www.join("slow")).unwrap();
        std::fs::write(www.join("a.txt"), "hello nginx\n").unwrap();
        std::fs::write(www.join("big.txt"), big_text()).unwrap();
        std::fs::write(www.join("mid.txt"), mid_bytes()).unwrap();
        std::fs::write(www.join("slow/s.txt"), mid_bytes()).unwrap();
    })
}

/// `keepalive_requests 2`: nginx closes each connection after its second
/// answer (`Connection: close`). Seven requests all succeed, two per
/// connection, exactly as ureq on std sockets.
#[test]
fn nginx_keepalive_requests_2_seven_requests() {
    let Some(ng) = nginx("ka2", "keepalive_requests 2;", "") else {
        return;
    };
    bounded(|| {
        let (sy, st) = agents(|c| c.timeout_global(Some(Duration::from_secs(3))));
        let url = ng.url("/a.txt");
        let mine: Vec<Got> = (0..7).map(|_| get(&sy, &url).unwrap()).collect();
        let u = url.clone();
        let theirs: Vec<Got> = on_std(st, move |a| (0..7).map(|_| get(a, &u).unwrap()).collect());
        for g in mine.iter().chain(&theirs) {
            assert_eq!((g.status, &g.body[..]), (200, &b"hello nginx\n"[..]));
        }
        let want: Vec<(u64, u64)> = (0..7).map(|i| (i / 2, i % 2 + 1)).collect();
        assert_eq!(shape(&theirs), want, "std");
        assert_eq!(shape(&mine), want, "sylvan");
    });
}

/// `keepalive_timeout 150ms`: the pooled connection is closed by nginx
/// while the agent idles 400 ms; the next request goes out on a fresh
/// connection and the one after reuses it. `keepalive_timeout 0` (every
/// answer `Connection: close`): a connection per request. Same as std.
#[test]
fn nginx_idle_keepalive_timeout_and_connection_close() {
    let Some(ng) = nginx(
        "kat",
        "keepalive_timeout 150ms;",
        r#"location = /close.txt { keepalive_timeout 0; return 200 "hello nginx\n"; }"#,
    ) else {
        return;
    };
    bounded(|| {
        let (sy, st) = agents(|c| c.timeout_global(Some(Duration::from_secs(2))));
        let (a, close) = (ng.url("/a.txt"), ng.url("/close.txt"));
        let run = move |agent: &ureq::Agent, sleep: &dyn Fn(Duration)| -> Vec<Got> {
            let mut v = vec![get(agent, &a).unwrap()];
            sleep(Duration::from_millis(400));
            v.push(get(agent, &a).unwrap());
            v.push(get(agent, &a).unwrap());
            for _ in 0..3 {
                v.push(get(agent, &close).unwrap());
            }
            v.push(get(agent, &a).unwrap());
            v
        };
        let mine = run(&sy, &sylvan::sleep);
        let theirs = on_std(st, move |agent| run(agent, &std::thread::sleep));
        let want = vec![(0, 1), (1, 1), (1, 2), (1, 3), (2, 1), (3, 1), (4, 1)];
        assert_eq!(shape(&theirs), want, "std");
        assert_eq!(shape(&mine), want, "sylvan");
        assert!(mine.iter().all(|g| g.body == b"hello nginx\n"));
    });
}

/// A 3 MB text file gzipped by nginx (chunked, no `Content-Length`) is
/// decoded whole; a HEAD of it (gzip and chunked headers, no body) comes
/// back at once, and a plain GET follows on the same connection; all as
/// ureq on std. (Reading the HEAD's empty "body" fails with a gzip error
/// on std too: ureq's behaviour, so it is not read here.)
#[test]
fn nginx_gzip_chunked_body_then_head_then_reuse() {
    let Some(ng) = nginx("gz", "", "") else {
        return;
    };
    bounded(|| {
        let (sy, st) = agents(|c| c.timeout_global(Some(Duration::from_secs(4))));
        let (big, a) = (ng.url("/big.txt"), ng.url("/a.txt"));
        let run = move |agent: &ureq::Agent| -> (String, Vec<u8>, Vec<Got>) {
            let mut res = agent.get(&big).call().unwrap();
            let te = res.headers()["transfer-encoding"]
                .to_str()
                .unwrap()
                .to_owned();
            let body = res
                .body_mut()
                .with_config()
                .limit(16 << 20)
                .read_to_vec()
                .unwrap();
            let t = Instant::now();
            let head = agent.head(&big).call().unwrap();
            assert!(
                t.elapsed() < Duration::from_millis(500),
                "{:?}",
                t.elapsed()
            );
            let status = head.status().as_u16();
            let xc = head.headers()["x-conn"].to_str().unwrap().to_owned();
            drop(head);
            let (c, q) = xc.split_once('/').unwrap();
            let head = Got {
                status,
                conn: c.parse().unwrap(),
                req: q.parse().unwrap(),
                body: Vec::new(),
            };
            let next = get(agent, &a).unwrap();
            (te, body, vec![head, next])
        };
        let (te, body, mine) = run(&sy);
        assert_eq!(te, "chunked");
        assert!(body == big_text(), "{} bytes", body.len());
        let (_, body2, theirs) = on_std(st, run);
        assert_eq!(body2.len(), body.len());
        assert_eq!(mine[0].status, 200);
        assert_eq!(mine[1].body, b"hello nginx\n");
        assert_eq!(shape(&theirs), [(0, 2), (0, 3)], "std");
        assert_eq!(shape(&mine), [(0, 2), (0, 3)], "sylvan");
    });
}

/// Bodiless answers on one kept-alive connection: 304 for a matching
/// `If-None-Match`, 204, a HEAD, then a GET with a body, as on std.
#[test]
fn nginx_304_204_head_keep_the_connection() {
    let Some(ng) = nginx("304", "", "") else {
        return;
    };
    bounded(|| {
        let (sy, st) = agents(|c| c.timeout_global(Some(Duration::from_secs(2))));
        let first = sy.get(&ng.url("/a.txt")).call().unwrap();
        let etag = first.headers()["etag"].to_str().unwrap().to_owned();
        drop(first);
        let (a, n204) = (ng.url("/a.txt"), ng.url("/204"));
        let run = move |agent: &ureq::Agent| -> Vec<Got> {
            vec![
                get(agent, &a).unwrap(),
                summarize(agent.get(&a).header("If-None-Match", &etag).call()).unwrap(),
                get(agent, &n204).unwrap(),
                summarize(agent.head(&a).call()).unwrap(),
                get(agent, &a).unwrap(),
            ]
        };
        let mine = run(&sy);
        let run2 = run.clone();
        let theirs = on_std(st, move |agent| run2(agent));
        let statuses: Vec<(u16, usize)> = mine.iter().map(|g| (g.status, g.body.len())).collect();
        assert_eq!(
            statuses,
            [(200, 12), (304, 0), (204, 0), (200, 0), (200, 12)]
        );
        assert_eq!(shape(&theirs), [(0, 1), (0, 2), (0, 3), (0, 4), (0, 5)]);
        assert_eq!(shape(&mine), shape(&theirs));
    });
}

/// 40 greenlets × 4 requests on one agent, mixing a 200 KB gzipped body
/// and a small one, under a 4 s global timeout: every body is right.
#[test]
fn nginx_forty_greenlets_share_an_agent() {
    let Some(ng) = nginx("many", "", "") else {
        return;
    };
    bounded(|| {
        let (sy, _) = agents(|c| c.timeout_global(Some(Duration::from_secs(4))));
        let (mid, a) = (Rc::new(mid_bytes()), ng.url("/a.txt"));
        let m = ng.url("/mid.txt");
        let gs: Vec<_> = (0..40)
            .map(|i| {
                let (sy, mid, a, m) = (sy.clone(), mid.clone(), a.clone(), m.clone());
                sylvan::spawn(move || {
                    let mut conns = Vec::new();
                    for j in 0..4 {
                        let big = (i + j) % 2 == 0;
                        let g = get(&sy, if big { &m } else { &a }).unwrap();
                        if big {
                            assert!(g.body == *mid, "{} bytes", g.body.len());
                        } else {
                            assert_eq!(g.body, b"hello nginx\n");
                        }
                        conns.push(g.conn);
                    }
                    conns
                })
            })
            .collect();
        let mut all = Vec::new();
        for g in gs {
            all.extend(g.join().unwrap());
        }
        all.sort_unstable();
        all.dedup();
        eprintln!("{} connections for 160 requests", all.len());
        assert!(all.len() <= 120, "{}", all.len());
    });
}

/// Uploads: 5 MB POSTed to a location that answers without reading (nginx
/// discards the body) is `ok` and the connection is kept; with
/// `Expect: 100-continue`, nginx's `100 Continue` lets the body go at
/// once (well before ureq's 1 s wait); a 2 MB body over the location's
/// `client_max_body_size` gives 413, as on std.
#[test]
fn nginx_uploads_discarded_100_continue_and_413() {
    let Some(ng) = nginx("up", "", "") else {
        return;
    };
    bounded(|| {
        let (sy, st) = agents(|c| {
            c.timeout_global(Some(Duration::from_secs(3)))
                .http_status_as_error(false)
        });
        let (up, small) = (ng.url("/upload"), ng.url("/small"));
        let run = move |agent: &ureq::Agent| -> Vec<Exchange> {
            let big = vec![b'u'; 5 << 20];
            let one = |r: Result<ureq::http::Response<ureq::Body>, ureq::Error>| {
                summarize(r)
                    .map(|g| (g.status, g.req, g.body))
                    .map_err(|e| e.to_string())
            };
            let t = Instant::now();
            let v = vec![
                one(agent.post(&up).send(&big[..])),
                one(agent.post(&up).send(&big[..])),
                one(agent
                    .post(&up)
                    .header("Expect", "100-continue")
                    .send(&big[..1 << 20])),
                one(agent.post(&small).send(&big[..2 << 20])),
            ];
            let mut v = v;
            v.push(Ok((0, t.elapsed().as_millis() as u64, Vec::new())));
            v
        };
        let mine = run(&sy);
        let theirs = on_std(st, run.clone());
        eprintln!("sylvan {:?}", summary(&mine));
        eprintln!("std    {:?}", summary(&theirs));
        let ok = |v: &[Exchange]| -> Vec<Option<(u16, Vec<u8>)>> {
            v[..4]
                .iter()
                .map(|r| r.as_ref().ok().map(|(s, _, b)| (*s, b.clone())))
                .collect()
        };
        assert_eq!(ok(&theirs)[..3], ok(&mine)[..3]);
        assert_eq!(ok(&mine)[0], Some((200, b"ok\n".to_vec())));
        assert_eq!(ok(&mine)[2], Some((200, b"ok\n".to_vec())));
        assert_eq!(
            mine[1].as_ref().unwrap().1,
            2,
            "second upload on the same connection"
        );
        assert_eq!(
            mine[3].as_ref().map(|g| g.0).map_err(|e| e.clone()),
            theirs[3].as_ref().map(|g| g.0).map_err(|e| e.clone()),
            "413 as on std"
        );
        let took = mine[4].as_ref().unwrap().1;
        assert!(took < 2000, "{took} ms");
    });
}

/// One upload's status, request number on its connection and body, or the
/// error.
type Exchange = Result<(u16, u64, Vec<u8>), String>;

fn summary(v: &[Exchange]) -> Vec<String> {
    v.iter()
        .map(|r| match r {
            Ok((s, q, b)) => format!("{s} r{q} {}B", b.len()),
            Err(e) => format!("ERR {e}"),
        })
        .collect()
}

/// nginx `limit_rate 8k` trickles a 200 KB body far slower than a 300 ms
/// `timeout_recv_body`: the read fails with `Timeout(RecvBody)` on time
/// (as on std), and the agent then serves the next request.
#[test]
fn nginx_limit_rate_body_slower_than_the_timeout() {
    let Some(ng) = nginx("slow", "", "") else {
        return;
    };
    bounded(|| {
        let (sy, st) = agents(|c| {
            c.timeout_recv_body(Some(Duration::from_millis(300)))
                .timeout_global(Some(Duration::from_secs(3)))
        });
        let slow = ng.url("/slow/s.txt");
        let t = Instant::now();
        let mine = get(&sy, &slow).unwrap_err();
        let took = t.elapsed();
        let s2 = slow.clone();
        let theirs = on_std(st, move |a| get(a, &s2).unwrap_err());
        eprintln!("sylvan {mine:?} in {took:?}; std {theirs:?}");
        assert!(
            matches!(mine, ureq::Error::Timeout(ureq::Timeout::RecvBody)),
            "{mine:?}"
        );
        assert_eq!(mine.to_string(), theirs.to_string());
        assert!(
            took >= Duration::from_millis(280) && took < Duration::from_millis(900),
            "{took:?}"
        );
        assert_eq!(get(&sy, &ng.url("/a.txt")).unwrap().body, b"hello nginx\n");
    });
}

// ---------------------------------------------------------------- TcpStream vs Python servers

/// What the scenarios need of a socket, for std and sylvan alike.
trait Sock: Read + Write {
    fn shut(&self, how: Shutdown) -> io::Result<()>;
}
impl Sock for std::net::TcpStream {
    fn shut(&self, how: Shutdown) -> io::Result<()> {
        self.shutdown(how)
    }
}
impl Sock for TcpStream {
    fn shut(&self, how: Shutdown) -> io::Result<()> {
        self.shutdown(how)
    }
}

fn outcome<T: std::fmt::Debug>(r: &io::Result<T>) -> String {
    match r {
        Ok(v) => format!("Ok({v:?})"),
        Err(e) => format!("Err({:?})", e.kind()),
    }
}

/// Runs `scenario` against a fresh `server` twice: on a sylvan socket (on
/// the hub) and on a std socket (on the blocking pool); returns both logs.
fn both<F>(server: &str, scenario: F) -> (Vec<String>, Vec<String>)
where
    F: Fn(&mut dyn Sock, &dyn Fn(Duration)) -> Vec<String> + Send + Sync + Clone + 'static,
{
    let (_p, port) = py_server(server, &[]);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mine = scenario(&mut s, &sylvan::sleep);
    drop(s);
    drop(_p);
    let (_p, port) = py_server(server, &[]);
    let f = scenario.clone();
    let theirs = sylvan::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        f(&mut s, &std::thread::sleep)
    });
    eprintln!("sylvan {mine:?}\nstd    {theirs:?}");
    (mine, theirs)
}

/// A Python server that sends a greeting and half-closes (`SHUT_WR`)
/// before reading anything, then counts what the client sends. The
/// client reads to end of stream, then still writes 1 MB and half-closes;
/// the server receives all of it. As std.
#[test]
fn python_server_half_closes_first_then_the_client_still_writes() {
    bounded(|| {
        let (mine, theirs) = both(
            r#"
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept(); c.settimeout(4)
c.sendall(b"hello, I am done talking"); c.shutdown(socket.SHUT_WR)
n = 0
while True:
    b = c.recv(65536)
    if not b: break
    n += len(b)
c.close()
"#,
            |s, _sleep| {
                let mut v = Vec::new();
                let mut got = Vec::new();
                let r = s.read_to_end(&mut got);
                v.push(format!(
                    "{} {:?}",
                    outcome(&r),
                    String::from_utf8_lossy(&got)
                ));
                let mut b = [0u8; 8];
                v.push(outcome(&s.read(&mut b)));
                v.push(outcome(&s.write_all(&vec![7u8; 1 << 20])));
                v.push(outcome(&s.shut(Shutdown::Write)));
                v
            },
        );
        assert_eq!(mine, theirs);
        assert_eq!(
            mine,
            [
                "Ok(24) \"hello, I am done talking\"",
                "Ok(0)",
                "Ok(())",
                "Ok(())"
            ]
        );
    });
}

/// A Python server that sends 200 KB and closes with `SO_LINGER 0` (a
/// reset) before the client reads. The client reads what arrived before
/// the reset, then gets `ConnectionReset`, then end of stream, and a write
/// fails; the same sequence as std's.
#[test]
fn python_server_bursts_then_resets() {
    bounded(|| {
        let (mine, theirs) = both(
            r#"
import socket, struct, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept()
c.sendall(bytes(i % 251 for i in range(200000)))
time.sleep(0.1)
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); c.close()
time.sleep(1)
"#,
            |s, sleep| {
                sleep(Duration::from_millis(300));
                let mut v = Vec::new();
                let mut got = Vec::new();
                let r = s.read_to_end(&mut got);
                let good = got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8);
                v.push(format!("{} prefix_ok={good}", outcome(&r)));
                v.push(format!("some={}", !got.is_empty()));
                let mut b = [0u8; 8];
                v.push(outcome(&s.read(&mut b)));
                v.push(outcome(&s.write(b"x")));
                v
            },
        );
        assert_eq!(mine, theirs);
        assert_eq!(mine[0], "Err(ConnectionReset) prefix_ok=true");
    });
}

/// A Python server that accepts and at once resets the connection; the
/// client, parked in a read with a 2 s timeout, gets `ConnectionReset`
/// at once, then end of stream; writes fail with `BrokenPipe`; as std.
#[test]
fn python_server_resets_right_after_accept_while_the_client_is_parked() {
    bounded(|| {
        let (mine, theirs) = both(
            r#"
import socket, struct, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept(); time.sleep(0.1)
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); c.close()
time.sleep(1)
"#,
            |s, _sleep| {
                let t = Instant::now();
                let mut b = [0u8; 8];
                let r = s.read(&mut b);
                let quick = t.elapsed() < Duration::from_millis(1000);
                vec![
                    format!("{} quick={quick}", outcome(&r)),
                    outcome(&s.read(&mut b)),
                    outcome(&s.write(b"x")),
                    outcome(&s.write(b"x")),
                ]
            },
        );
        assert_eq!(mine, theirs);
        assert_eq!(mine[0], "Err(ConnectionReset) quick=true");
    });
}

/// `Expect: 100-continue` against a Python server that never sends
/// `100 Continue`: after `timeout_await_100` (200 ms) the body goes
/// anyway and arrives whole; against one that answers 401 at once and
/// closes without reading, the 401 is the answer. As ureq on std.
#[test]
fn expect_100_continue_against_a_server_that_never_says_continue() {
    bounded(|| {
        let (_p, port) = py_server(
            r#"
import socket, threading, time
def handle(c):
    f = c.makefile("rb"); c.settimeout(3)
    try:
        while True:
            line = f.readline()
            if not line: return
            path = line.split()[1].decode(); n = 0
            while True:
                h = f.readline()
                if h in (b"\r\n", b""): break
                k, _, v = h.decode().partition(":")
                if k.lower() == "content-length": n = int(v)
            if path == "/deny":
                c.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\nConnection: close\r\n\r\ndeny")
                time.sleep(0.3); c.close(); return
            t = time.time(); first = f.read(1); waited = time.time() - t
            rest = f.read(n - 1)
            body = b"got %d waited=%d" % (len(first) + len(rest), int(waited * 1000))
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    except OSError:
        pass
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
"#,
            &[],
        );
        let (sy, st) = agents(|c| {
            c.timeout_global(Some(Duration::from_secs(3)))
                .timeout_await_100(Some(Duration::from_millis(200)))
                .http_status_as_error(false)
        });
        let base = format!("http://127.0.0.1:{port}");
        let run = move |agent: &ureq::Agent| -> Vec<String> {
            let body = vec![b'e'; 100_000];
            ["/never", "/deny", "/never"]
                .iter()
                .map(|p| {
                    let t = Instant::now();
                    let r = agent
                        .post(format!("{base}{p}"))
                        .header("Expect", "100-continue")
                        .send(&body[..]);
                    let took = t.elapsed().as_millis() / 100;
                    match summarize(r) {
                        Ok(g) => format!(
                            "{} {} took~{took}00ms",
                            g.status,
                            String::from_utf8_lossy(&g.body)
                        ),
                        Err(e) => format!("ERR {e}"),
                    }
                })
                .collect()
        };
        let mine = run(&sy);
        let theirs = on_std(st, run.clone());
        eprintln!("sylvan {mine:?}\nstd    {theirs:?}");
        let strip = |v: &[String]| -> Vec<String> {
            v.iter()
                .map(|s| {
                    s.split_whitespace()
                        .filter(|w| !w.starts_with("waited=") && !w.starts_with("took~"))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect()
        };
        assert_eq!(strip(&mine), strip(&theirs));
        assert!(mine[0].starts_with("200 got 100000 waited="), "{mine:?}");
        assert!(mine[1].starts_with("401 deny"), "{mine:?}");
        let waited: u64 = field(&mine[0], "waited").parse().unwrap();
        assert!((150..900).contains(&waited), "{mine:?}");
    });
}
