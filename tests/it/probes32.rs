//! Probe round 32: HTTPS and TLS through `sylvan::ureq`.
//!
//! Every earlier round tested only https failures (a plain-http peer, a
//! silent peer). This one runs ureq's rustls connector, chained after
//! sylvan's socket connector, against a real TLS server: a throwaway CA
//! and server certificates made with the `openssl` CLI in a temp dir, and
//! a Python 3 `ssl` + `http.server` process on OS-chosen loopback ports
//! (one thread per connection; it reports what it saw on `/stats`).
//!
//! Checked: a GET and keep-alive reuse of one TLS connection (also by
//! host name, through sylvan's resolver and SNI); 64 greenlets on one hub
//! fetching concurrently; 8 MiB down and 6 MiB up intact; a body or a
//! handshake that stalls is cut by ureq's timeouts with a timeout error
//! while a ticker greenlet keeps running; `kill` and `with_timeout` of a
//! greenlet parked inside an https call (in the handshake, before the
//! head, in the body) unwind promptly and close the connection, and the
//! agent goes on; `Agent::shutdown` interrupts a TLS read; certificate
//! errors (wrong name, unknown CA, expired) fail fast with the same
//! message as ureq on std sockets; close_notify and bare FIN after a
//! body, a `Content-Length` that lies, and a pooled TLS connection the
//! server closed, each compared with ureq on std sockets; an upload into
//! a server that reads nothing (send timeout, kill); an agent with a
//! pooled TLS connection dropped on another thread; the crawler example
//! against an https site whose certificate it cannot trust; and https
//! through a CONNECT proxy (BUG: sylvan's connector chain has no proxy
//! support, so any proxy config, from the environment too, fails every
//! request).
//!
//! A program that is not installed (`openssl`, `python3`) makes its test
//! say so on stderr and pass. Tests marked `BUG` show a defect and fail
//! without their `ignore`.

use std::cell::Cell;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sylvan::ureq::ureq;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

use crate::util::quiet;

const MS: Duration = Duration::from_millis(1);

// ---------------------------------------------------------------- helpers

/// Whether `prog` can be run (found on `PATH`); says so on stderr if not.
fn have(prog: &str) -> bool {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("{prog} is not installed: skipped (install it to run this probe)");
    }
    ok
}

/// Runs `f` on a greenlet-aware hard limit: a hang fails the test with a
/// message instead of stalling the run.
fn within<T>(limit: Duration, f: impl FnOnce() -> T) -> T {
    sylvan::with_timeout(limit, f).unwrap_or_else(|_| panic!("test hung (hit the {limit:?} bound)"))
}

/// Adler-32, as Python's `zlib.adler32` (the server's checksum).
fn adler32(init: u32, data: &[u8]) -> u32 {
    let (mut a, mut b) = (init & 0xffff, init >> 16);
    for chunk in data.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= 65521;
        b %= 65521;
    }
    (b << 16) | a
}

/// A ticker greenlet: counts 2 ms sleeps until told to stop. If the hub
/// were stuck in a TLS read, it would not advance.
fn ticker() -> (sylvan::Greenlet<u32>, Rc<Cell<bool>>) {
    let stop = Rc::new(Cell::new(false));
    let s = stop.clone();
    let g = sylvan::spawn(move || {
        let mut n = 0;
        while !s.get() {
            sylvan::sleep(2 * MS);
            n += 1;
        }
        n
    });
    (g, stop)
}

// ---------------------------------------------------------------- a throwaway PKI

/// A temp dir with a CA, a server certificate for `127.0.0.1` and
/// `localhost` signed by it (`srv.pem`, `srv.key`), the same key in a
/// certificate for another name only (`wrong.pem`) and in one that expired
/// in 2020 (`expired.pem`), and a second, unrelated CA (`other-ca.pem`).
/// Removed on drop.
struct Pki {
    dir: PathBuf,
}

static UNIQUE: AtomicUsize = AtomicUsize::new(0);

impl Pki {
    /// `None` (and a note on stderr) if `openssl` or `python3` is missing.
    fn new() -> Option<Pki> {
        if !have("openssl") || !have("python3") {
            return None;
        }
        let dir = std::env::temp_dir().join(format!(
            "sylvan-p32-{}-{}",
            std::process::id(),
            UNIQUE.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let pki = Pki { dir };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for (ca, cn) in [("ca", "sylvan-probe-ca"), ("other-ca", "sylvan-other-ca")] {
            let (key, pem, subj) = (
                format!("{ca}.key"),
                format!("{ca}.pem"),
                format!("/CN={cn}"),
            );
            pki.openssl(&[
                &["req", "-x509"],
                &ec[..],
                &[
                    "-keyout",
                    &key,
                    "-out",
                    &pem,
                    "-days",
                    "2",
                    "-subj",
                    &subj,
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            ]);
        }
        pki.openssl(&[
            &["req", "-new"],
            &ec[..],
            &[
                "-keyout",
                "srv.key",
                "-out",
                "srv.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]);
        let ext = |san: &str| {
            format!(
                "subjectAltName={san}\nbasicConstraints=CA:FALSE\n\
                 keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
            )
        };
        pki.write("srv.ext", &ext("IP:127.0.0.1,DNS:localhost"));
        pki.write("wrong.ext", &ext("DNS:wrong.invalid"));
        for (out, extf, serial) in [("srv.pem", "srv.ext", "2"), ("wrong.pem", "wrong.ext", "3")] {
            pki.openssl(&[&[
                "x509",
                "-req",
                "-in",
                "srv.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                serial,
                "-days",
                "2",
                "-out",
                out,
                "-extfile",
                extf,
            ]]);
        }
        // `x509 -req` of OpenSSL 3.0 cannot back-date; `ca` can.
        let d = pki.dir.display();
        pki.write(
            "ca.cnf",
            &format!(
                "[ca]\ndefault_ca = d\n[d]\ndatabase = {d}/index.txt\nnew_certs_dir = {d}\n\
                 serial = {d}/serial\ndefault_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n"
            ),
        );
        pki.write("index.txt", "");
        pki.write("serial", "04\n");
        pki.openssl(&[&[
            "ca",
            "-batch",
            "-notext",
            "-config",
            "ca.cnf",
            "-cert",
            "ca.pem",
            "-keyfile",
            "ca.key",
            "-in",
            "srv.csr",
            "-out",
            "expired.pem",
            "-extfile",
            "srv.ext",
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20200102000000Z",
        ]]);
        pki.write("server.py", SERVER_PY);
        Some(pki)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).unwrap();
    }

    fn openssl(&self, parts: &[&[&str]]) {
        let args: Vec<&str> = parts.concat();
        let out = Command::new("openssl")
            .args(&args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The certificate in `name` (PEM), for a client to trust.
    fn cert(&self, name: &str) -> Certificate<'static> {
        let pem = std::fs::read(self.path(name)).unwrap();
        Certificate::from_pem(&pem).unwrap()
    }

    /// A TLS config that trusts only the CA in `ca`.
    fn trusting(&self, ca: &str) -> TlsConfig {
        TlsConfig::builder()
            .root_certs(RootCerts::new_with_certs(&[self.cert(ca)]))
            .build()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------- the TLS server

/// The Python TLS server. Its first port serves HTTP/1.1 with keep-alive
/// over `srv.pem`; its second answers half of the server's first
/// handshake flight and then nothing; each further port serves the same
/// HTTP over another certificate. `/stats` answers its counters as JSON.
const SERVER_PY: &str = r#"import socket, ssl, sys, threading, time, zlib, random, json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer

lock = threading.Lock()
state = dict(conns=0, open=0, reqs=0, hs_fail=0, stall_started=0, stall_closed=0,
             hs_stall_started=0, hs_stall_closed=0, closed_after=0)

def bump(k, d=1):
    with lock:
        state[k] += d

def wait_close(sock):
    sock.settimeout(10)
    try:
        while sock.recv(4096):
            pass
    except Exception:
        pass

def wait_fin(sock):
    # until the client's FIN or reset arrives, reading nothing (TCP_INFO's
    # first byte is the state: 1 established)
    for _ in range(1000):
        st = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
        if st != 1:
            return
        time.sleep(0.01)

def notify_and_fin(sock):
    # close_notify without waiting for the peer's, then a TCP FIN
    sock.settimeout(0)
    try:
        sock.unwrap()
    except Exception:
        pass
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except Exception:
        pass

def fin(sock):
    # a TCP FIN with no close_notify
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except Exception:
        pass

class H(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *a):
        pass

    def head(self, n, extra=()):
        self.send_response(200)
        self.send_header('Content-Type', 'application/octet-stream')
        if n is not None:
            self.send_header('Content-Length', str(n))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()

    def do_POST(self):
        bump('reqs')
        if self.path == '/stall-read':
            bump('stall_started')
            wait_fin(self.connection)
            bump('stall_closed')
            self.close_connection = True
            return
        n = int(self.headers.get('Content-Length', '0'))
        got, a = 0, 1
        while got < n:
            chunk = self.rfile.read(min(65536, n - got))
            if not chunk:
                break
            a = zlib.adler32(chunk, a)
            got += len(chunk)
        body = ('%d %d' % (got, a)).encode()
        self.head(len(body))
        self.wfile.write(body)

    def do_GET(self):
        bump('reqs')
        p = self.path
        if p == '/stats':
            with lock:
                body = json.dumps(state).encode()
            self.head(len(body))
            self.wfile.write(body)
        elif p.startswith('/hello'):
            body = ('hello over tls %s\n' % p).encode()
            self.head(len(body))
            self.wfile.write(body)
        elif p.startswith('/size/'):
            n = int(p[6:])
            body = random.Random(n).randbytes(n)
            self.head(n, [('X-Adler32', str(zlib.adler32(body)))])
            self.wfile.write(body)
        elif p == '/stall-body':
            self.head(100000)
            self.wfile.write(b'x' * 1000)
            bump('stall_started')
            wait_close(self.connection)
            bump('stall_closed')
            self.close_connection = True
        elif p == '/stall-head':
            bump('stall_started')
            wait_close(self.connection)
            bump('stall_closed')
            self.close_connection = True
        elif p in ('/lie-notify', '/lie-abrupt'):
            self.head(100000)
            self.wfile.write(b'y' * 1000)
            (notify_and_fin if p == '/lie-notify' else fin)(self.connection)
            self.close_connection = True
        elif p in ('/eof-notify', '/eof-abrupt'):
            self.head(None, [('Connection', 'close')])
            self.wfile.write(b'z' * 5000)
            (notify_and_fin if p == '/eof-notify' else fin)(self.connection)
            self.close_connection = True
        elif p in ('/full-notify', '/full-abrupt'):
            self.head(5000, [('Connection', 'close')])
            self.wfile.write(b'w' * 5000)
            (notify_and_fin if p == '/full-notify' else fin)(self.connection)
            self.close_connection = True
        elif p == '/close-later':
            # a complete keep-alive answer; then the server closes the idle
            # connection (close_notify and FIN), as keepalive_timeout does
            body = b'bye\n'
            self.head(len(body))
            self.wfile.write(body)
            notify_and_fin(self.connection)
            bump('closed_after')
            self.close_connection = True
        else:
            self.send_error(404)

class TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def server_bind(self):
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        pass

    def finish_request(self, request, client_address):
        bump('conns')
        bump('open')
        tls = None
        try:
            request.settimeout(10)
            try:
                tls = self.ctx.wrap_socket(request, server_side=True)
            except Exception:
                bump('hs_fail')
                return
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            if tls is not None:
                try:
                    tls.close()
                except Exception:
                    pass
            bump('open', -1)

def hs_one(c, ctx):
    c.settimeout(10)
    try:
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inc, out, server_side=True)
        while True:
            data = c.recv(65536)
            if not data:
                return
            inc.write(data)
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                pass
            flight = out.read()
            if flight:
                # half of the server's first flight, then nothing
                c.sendall(flight[: len(flight) // 2])
                break
        bump('hs_stall_started')
        wait_close(c)
    except Exception:
        pass
    finally:
        c.close()
        bump('hs_stall_closed')

def hs_staller(ctx):
    l = socket.socket()
    l.bind(('127.0.0.1', 0))
    l.listen(64)
    def loop():
        while True:
            c, _ = l.accept()
            threading.Thread(target=hs_one, args=(c, ctx), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()
    return l.getsockname()[1]

def context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx

def serve(ctx):
    srv = TLSServer(('127.0.0.1', 0), H)
    srv.ctx = ctx
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv.server_address[1]

args = sys.argv[1:]
pairs = [(args[i], args[i + 1]) for i in range(0, len(args), 2)]
main = context(*pairs[0])
ports = [serve(main), hs_staller(main)] + [serve(context(c, k)) for c, k in pairs[1:]]
print('PORTS ' + ' '.join(map(str, ports)), flush=True)
# until the test closes stdin (or is gone)
sys.stdin.read()
"#;

/// A running `server.py`: killed and reaped on drop (and it exits by
/// itself when its stdin closes, should this process die first).
struct TlsServer {
    child: Child,
    _stdin: Option<ChildStdin>,
    ports: Vec<u16>,
}

impl TlsServer {
    /// Starts the server with `srv.pem` on its main port, then one more
    /// port per certificate in `extra` (all with `srv.key`).
    fn start(pki: &Pki, extra: &[&str]) -> TlsServer {
        let mut cmd = Command::new("python3");
        cmd.arg("-u")
            .arg(pki.path("server.py"))
            .arg(pki.path("srv.pem"))
            .arg(pki.path("srv.key"));
        for c in extra {
            cmd.arg(pki.path(c)).arg(pki.path("srv.key"));
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python3");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let mut server = TlsServer {
            child,
            _stdin: stdin,
            ports: Vec::new(),
        };
        // The first line names the ports; read off the hub, bounded (a
        // timeout drops the server, whose kill ends the blocked read).
        let line = sylvan::with_timeout(Duration::from_secs(5), move || {
            sylvan::spawn_blocking(move || {
                let mut line = String::new();
                let _ = BufReader::new(stdout).read_line(&mut line);
                line
            })
        })
        .expect("the TLS server did not start within 5 s");
        server.ports = line
            .strip_prefix("PORTS ")
            .unwrap_or_else(|| panic!("unexpected first line from server.py: {line:?}"))
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        assert_eq!(server.ports.len(), 2 + extra.len(), "{line:?}");
        server
    }

    /// The main port's base URL (`https://127.0.0.1:PORT`).
    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.ports[0])
    }

    /// The handshake-stalling port's base URL.
    fn stall_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.ports[1])
    }

    /// The URL of extra certificate `i` (0-based).
    fn extra_url(&self, i: usize) -> String {
        format!("https://127.0.0.1:{}", self.ports[2 + i])
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type AgentConfig = ureq::config::ConfigBuilder<ureq::typestate::AgentScope>;

/// A sylvan agent trusting the probe CA, configured further by `f`.
fn tls_agent(pki: &Pki, f: impl FnOnce(AgentConfig) -> AgentConfig) -> ureq::Agent {
    let b = ureq::Agent::config_builder()
        .tls_config(pki.trusting("ca.pem"))
        .http_status_as_error(false);
    sylvan::ureq::agent(f(b).build())
}

/// ureq's own connector (std sockets) with the same configuration: the
/// reference a sylvan agent's behaviour is compared with.
fn std_agent(pki: &Pki, f: impl FnOnce(AgentConfig) -> AgentConfig) -> ureq::Agent {
    let b = ureq::Agent::config_builder()
        .tls_config(pki.trusting("ca.pem"))
        .http_status_as_error(false);
    ureq::Agent::new_with_config(f(b).build())
}

/// Runs `f` on a plain OS thread (ureq on std sockets blocks it), off the
/// hub: the main greenlet parks meanwhile.
fn on_std_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    sylvan::spawn_blocking(f)
}

fn get_string(agent: &ureq::Agent, url: &str) -> Result<String, ureq::Error> {
    agent.get(url).call()?.body_mut().read_to_string()
}

/// The server's counters (`/stats`), fetched with `agent`.
fn stats(agent: &ureq::Agent, server: &TlsServer) -> serde_json::Value {
    let text = get_string(agent, &format!("{}/stats", server.url())).expect("GET /stats");
    serde_json::from_str(&text).unwrap()
}

/// Polls `/stats` (bounded: 3 s) until `cond` holds on it.
fn stats_until(
    what: &str,
    agent: &ureq::Agent,
    server: &TlsServer,
    cond: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let t = Instant::now();
    loop {
        let s = stats(agent, server);
        if cond(&s) {
            return s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "never happened within 3 s: {what}; server stats {s}"
        );
        sylvan::sleep(10 * MS);
    }
}

fn n(s: &serde_json::Value, key: &str) -> u64 {
    s[key].as_u64().unwrap_or_else(|| panic!("no {key} in {s}"))
}

/// `text` with each run of digits replaced by `#`.
fn digits_blanked(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if !c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('#') {
            out.push('#');
        }
    }
    out
}

/// A short description of a result, to compare sylvan with std ureq.
fn outcome(r: &Result<Vec<u8>, ureq::Error>) -> String {
    match r {
        Ok(b) => format!("Ok({} bytes)", b.len()),
        Err(ureq::Error::Io(e)) => format!("Io({:?})", e.kind()),
        Err(ureq::Error::Timeout(t)) => format!("Timeout({t:?})"),
        Err(e) => format!("Err({e})"),
    }
}

fn get_bytes(agent: &ureq::Agent, url: &str) -> Result<Vec<u8>, ureq::Error> {
    agent.get(url).call()?.body_mut().read_to_vec()
}

/// Polls `base/stats` with `agent` (bounded: 3 s, `pause` between tries)
/// until `cond` holds; for a reference run on a std thread as well.
fn wait_stats(
    what: &str,
    agent: &ureq::Agent,
    base: &str,
    pause: fn(Duration),
    cond: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let t = Instant::now();
    loop {
        let text = get_string(agent, &format!("{base}/stats")).expect("GET /stats");
        let s: serde_json::Value = serde_json::from_str(&text).unwrap();
        if cond(&s) {
            return s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "never happened within 3 s: {what}; server stats {s}"
        );
        pause(10 * MS);
    }
}

// ---------------------------------------------------------------- tests

/// A GET over TLS answers the right body, and 20 sequential requests on
/// one agent go over one TLS connection (keep-alive through rustls on a
/// sylvan socket, TLS 1.3 session tickets and all): the server accepts
/// exactly one.
#[test]
fn h01_get_and_keep_alive_reuse_one_tls_connection() {
    let Some(pki) = Pki::new() else { return };
    let server = TlsServer::start(&pki, &[]);
    within(Duration::from_secs(8), || {
        let agent = tls_agent(&pki, |b| b.timeout_global(Some(Duration::from_secs(3))));
        for i in 0..20 {
            let body = get_string(&agent, &format!("{}/hello/{i}", server.url())).unwrap();
            assert_eq!(body, format!("hello over tls /hello/{i}\n"));
        }
        let s = stats(&agent, &server);
        assert_eq!(n(&s, "reqs"), 21, "{s}");
        assert_eq!(n(&s, "conns"), 1, "one TLS connection for all: {s}");
    });
}

/// By host name: sylvan's resolver (on its thread pool) finds
/// `localhost`, rustls sends it as SNI and checks it against the
/// certificate's DNS name, and the connection is reused.
#[test]
fn h02_https_by_host_name() {
    let Some(pki) = Pki::new() else { return };
    let server = TlsServer::start(&pki, &[]);
    within(Duration::from_secs(8), || {
        let agent = tls_agent(&pki, |b| b.timeout_global(Some(Duration::from_secs(3))));
        let base = format!("https://localhost:{}", server.ports[0]);
        for i in 0..3 {
            let body = get_string(&agent, &format!("{base}/hello/n{i}")).unwrap();
            assert_eq!(body, format!("hello over tls /hello/n{i}\n"));
        }
        let s: serde_json::Value =
            serde_json::from_str(&get_string(&agent, &format!("{base}/stats")).unwrap()).unwrap();
        assert_eq!(n(&s, "conns"), 1, "{s}");
        assert_eq!(n(&s, "reqs"), 4, "{s}");
    });
}

/// 64 greenlets on one hub, each making 3 https requests through one
/// agent, all at once: every answer is right, the server counts all 192,
/// the pool never opens more connections than there are greenlets, a
/// ticker greenlet gets turns meanwhile, and it all takes bounded time.
#[test]
fn h03_sixty_four_greenlets_fetch_concurrently() {
    let Some(pki) = Pki::new() else { return };
    let server = TlsServer::start(&pki, &[]);
    within(Duration::from_secs(9), || {
        let agent = tls_agent(&pki, |b| {
            b.timeout_global(Some(Duration::from_secs(6)))
                .max_idle_connections(64)
                .max_idle_connections_per_host(64)
        });
        let (tick, stop) = ticker();
        let t = Instant::now();
        let gs: Vec<_> = (0..64)
            .map(|i| {
                let agent = agent.clone();
                let url = server.url();
                sylvan::spawn(move || {
                    for j in 0..3 {
                        let body = get_string(&agent, &format!("{url}/hello/{i}-{j}"))?;
                        assert_eq!(body, format!("hello over tls /hello/{i}-{j}\n"));
                    }
                    Ok::<_, ureq::Error>(())
                })
            })
            .collect();
        for (i, g) in gs.into_iter().enumerate() {
            g.join()
                .unwrap_or_else(|e| panic!("greenlet {i}: {e}"))
                .unwrap_or_else(|e| panic!("greenlet {i}: {e}"));
        }
        let took = t.elapsed();
        stop.set(true);
        let ticks = tick.join().unwrap();
        let s = stats(&agent, &server);
        eprintln!("64 x 3 https requests in {took:?}, {ticks} ticks, server {s}");
        assert_eq!(n(&s, "reqs"), 193, "{s}");
        assert!((1..=64).contains(&n(&s, "conns")), "{s}");
        assert!(
            ticks >= 1,
            "the ticker never ran while 64 greenlets fetched"
        );
        assert!(took < Duration::from_secs(6), "{took:?}");
    });
}

/// 8 MiB over TLS, read in odd-sized pieces (7,919 bytes) while another
/// greenlet makes small requests on a second connection of the same
/// agent: length and Adler-32 match what the server sent.
#[test]
fn h04_large_download_arrives_intact() {
    let Some(pki) = Pki::new() else { return };
    let server = TlsServer::start(&pki, &[]);
    within(Duration::from_secs(9), || {
        let agent = tls_agent(&pki, |b| b.timeout_global(Some(Duration::from_secs(8))));
        let side = {
            let agent = agent.clone();
            let url = server.url();
            sylvan::spawn(move || {
                for i in 0..20 {
                    let body = get_string(&agent, &format!("{url}/hello/side{i}")).unwrap();
                    assert_eq!(body, format!("hello over tls /hello/side{i}\n"));
                }
            })
        };
        const SIZE: usize = 8 << 20;
        let mut res = agent
            .get(format!("{}/size/{SIZE}", server.url()))
            .call()
            .unwrap();
        let want: u32 = res.headers()["x-adler32"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let mut r = res.body_mut().as_reader();
        let mut buf = vec![0u8; 7919];
        let (mut len, mut sum) = (0usize, 1u32);
        loop {
            let k = r.read(&mut buf).unwrap();
            if k == 0 {
                break;
            }
            len += k;
            sum = adler32(sum, &buf[..k]);
            assert!(len <= SIZE, "more than the server sent");
        }
        drop(r);
        side.join().unwrap();
        assert_eq!(len, SIZE);
        assert_eq!(sum, want, "the body differs from what the server sent");
    });
}

/// 6 MiB sent up over TLS (`transmit_output` through rustls in many
/// records) while a ticker runs: the server received every byte
/// (length and Adler-32), and the answer comes back on the same call.
#[test]
fn h05_large_upload_arrives_intact() {
    let Some(pki) = Pki::new() else { return };
    let server = TlsServer::start(&pki, &[]);
    within(Duration::from_secs(9), || {
        let agent = tls_agent(&pki, |b| b.timeout_global(Some(Duration::from_secs(8))));
        let data: Vec<u8> = (0..6usize << 20)
            .map(|i| (i.wrapping_mul(31) ^ (i >> 9)) as u8)
            .collect();
        let (tick, stop) = ticker();
        let answer = agent
            .post(format!("{}/upload", server.url()))
            .send(&data[..])
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        stop.set(true);
        let ticks = tick.join().unwrap();
        assert_eq!(answer, format!("{} {}", data.len(), adler32(1, &data)));
        assert!(ticks >= 1, "the hub never ran the ticker during the upload");
    });
}

/// A body that stops after 1,000 of 100,000 bytes: `timeout_recv_body`
/// ends the read with `Error::Timeout` after about its length, as ureq on
/// std sockets does, while a ticker greenlet keeps running; the
/// connection is closed (the server sees it go) and the agent then
/// serves the next request.
#[test]
fn h06_stalled_body_times_out_and_the_hub_runs_on() {
    let Some(pki) = Pki::new() else { return };
    let server = TlsServer::start(&pki, &[]);
    within(Duration::from_secs(8), || {
        let url = format!("{}/stall-body", server.url());
        let reference = {
            let a = std_agent(&pki, |b| b.timeout_recv_body(Some(300 * MS)));
            let url = url.clone();
            on_std_thread(move || outcome(&get_bytes(&a, &url)))
        };
        let agent = tls_agent(&pki, |b| b.timeout_recv_body(Some(300 * MS)));
        let (tick, stop) = ticker();
        let t = Instant::now();
        let mut res = agent.get(&url).call().unwrap();
        let r = res.body_mut().read_to_vec();
        let took = t.elapsed();
        stop.set(true);
        let ticks = tick.join().unwrap();
        assert!(matches!(r, Err(ureq::Error::Timeout(_))), "{r:?}");
        assert_eq!(outcome(&r), reference, "sylvan and std ureq differ");
        assert!(
            took >= 280 * MS && took < Duration::from_secs(2),
            "{took:?}"
        );
        assert!(
            ticks >= 20,
            "only {ticks} ticks in {took:?}: the hub stalled"
        );
        drop(res);
        let obs = tls_agent(&pki, |b| b.timeout_global(Some(Duration::from_secs(3))));
        stats_until("both stalled connections closed", &obs, &server, |s| {
            n(s, "stall_closed") == 2
        });
        assert!(get_string(&agent, &format!("{}/hello/after", server.url())).is_ok());
    });
}

/// A server that answers half of its first handshake flight and then
/// nothing: `timeout_connect` (which bounds the TLS handshake in ureq)
/// ends the call with `Error::Timeout` after about its length, as with
/// ureq on std sockets; a ticker runs meanwhile, and the half-open TLS
/// connection is closed.
#[test]
fn h07_stalled_handshake_times_out() {
    let Some(pki) = Pki::new() else { return };
    let server = TlsServer::start(&pki, &[]);
    within(Duration::from_secs(8), || {
        let url = format!("{}/", server.stall_url());
        let reference = {
            let a = std_agent(&pki, |b| b.timeout_connect(Some(300 * MS)));
            let url = url.clone();
            on_std_thread(move || outcome(&get_bytes(&a, &url)))
        };
        let agent = tls_agent(&pki, |b| b.timeout_connect(Some(300 * MS)));
        let (tick, stop) = ticker();
        let t = Instant::now();
        let r = get_bytes(&agent, &url);
        let took = t.elapsed();
        stop.set(true);
        let ticks = tick.join().unwrap();
        assert!(matches!(r, Err(ureq::Error::Timeout(_))), "{r:?}");
        assert_eq!(outcome(&r), reference, "sylvan and std ureq differ");
        assert!(
            took >= 280 * MS && took < Duration::from_secs(2),
            "{took:?}"
        );
        assert!(
            ticks >= 20,
            "only {ticks} ticks in {took:?}: the hub stalled"
        );
        let obs = tls_agent(&pki, |b| b.timeout_global(Some(Duration::from_secs(3))));
        let s = stats_until("both stalled handshakes closed", &obs, &server, |s| {
            n(s, "hs_stall_closed") == 2
        });
        assert_eq!(n(&s, "hs_stall_started"), 2, "{s}");
    });
}

/// `kill` of greenlets parked inside https calls (no ureq timeouts set) —
/// one in the TLS handshake, one waiting for the response head, one in
/// the body — returns promptly, each join says killed, every connection
/// is closed (the server sees all three go), and the same agent then
/// serves ten concurrent requests.
#[test]
fn h08_kill_inside_https_calls_unwinds_promptly() {
    let Some(pki) = Pki::new() else { return };
    let server = TlsServer::start(&pki, &[]);
    within(Duration::from_secs(8), || {
        quiet();
        let agent = tls_agent(&pki, |b| b);
        let obs = tls_agent(&pki, |b| b.timeout_global(Some(Duration::from_secs(3))));
        let urls = [
            format!("{}/", server.stall_url()),
            format!("{}/stall-head", server.url()),
            format!("{}/stall-body", server.url()),
        ];
        let gs: Vec<_> = urls
            .into_iter()
            .map(|u| {
                let agent = agent.clone();
                sylvan::spawn(move || get_bytes(&agent, &u))
            })
            .collect();
        stats_until("all three parked", &obs, &server, |s| {
            n(s, "hs_stall_started") == 1 && n(s, "stall_started") == 2
        });
        for (i, g) in gs.iter().enumerate() {
            let t = Instant::now();
            g.kill();
            assert!(t.elapsed() < 2000 * MS, "kill {i} took {:?}", t.elapsed());
        }
        for g in gs {
            let e = g.join().unwrap_err();
            assert!(e.is_killed(), "{e}");
        }
        stats_until("the killed calls' connections closed", &obs, &server, |s| {
            n(s, "hs_stall_closed") == 1 && n(s, "stall_closed") == 2
        });
        let gs: Vec<_> = (0..10)
            .map(|i| {
                let agent = agent.clone();
                let url = format!("{}/hello/k{i}", server.url());
                sylvan::spawn(move || get_string(&agent, &url))
            })
            .collect();
        for (i, g) in gs.into_iter().enumerate() {
            let body = g.join().unwrap().unwrap();
            assert_eq!(body, format!("hello over tls /hello/k{i}\n"));
        }
    });
}

/// `sylvan::with_timeout` around https calls stalled in the handshake,
/// before the head and in the body: each gives `Err(Elapsed)` after about
/// the limit and its connection closes; a call that finishes in time
/// returns its value; the agent keeps working.
#[test]
fn h09_with_timeout_around_https_calls() {
    let Some(pki) = Pki::new() else { return };
    let server = TlsServer::start(&pki, &[]);
    within(Duration::from_secs(8), || {
        let agent = tls_agent(&pki, |b| b);
        let obs = tls_agent(&pki, |b| b.timeout_global(Some(Duration::from_secs(3))));
        let urls = [
            format!("{}/", server.stall_url()),
            format!("{}/stall-head", server.url()),
            format!("{}/stall-body", server.url()),
        ];
        for u in &urls {
            let t = Instant::now();
            let r = sylvan::with_timeout(200 * MS, || get_bytes(&agent, u));
            let took = t.elapsed();
            assert!(r.is_err(), "{u}: {r:?}");
            assert!(
                took >= 190 * MS && took < 700 * MS,
                "{u}: with_timeout(200 ms) took {took:?}"
            );
        }
        stats_until(
            "the timed-out calls' connections closed",
            &obs,
            &server,
            |s| n(s, "hs_stall_closed") == 1 && n(s, "stall_closed") == 2,
        );
        let ok = sylvan::with_timeout(Duration::from_secs(3), || {
            get_string(&agent, &format!("{}/hello/in-time", server.url()))
        });
        assert_eq!(ok.unwrap().unwrap(), "hello over tls /hello/in-time\n");
    });
}

/// Certificate errors — a certificate for another name, one that expired
/// in 2020, and a CA the client does not trust — fail the call at once
/// (no timeout, no panic) with an error that names the problem, the same
/// as ureq on std sockets; `disable_verification` then gets through, and
/// the agent still works against the good server.
#[test]
fn h10_certificate_errors_are_prompt_and_clear() {
    let Some(pki) = Pki::new() else { return };
    let server = TlsServer::start(&pki, &["wrong.pem", "expired.pem"]);
    within(Duration::from_secs(8), || {
        let cases = [
            ("wrong name", server.extra_url(0), "ca.pem", "name"),
            ("expired", server.extra_url(1), "ca.pem", "expired"),
            ("unknown CA", server.url(), "other-ca.pem", "issuer"),
        ];
        for (what, base, ca, word) in cases {
            let url = format!("{base}/hello/cert");
            let config = |b: AgentConfig| {
                b.tls_config(pki.trusting(ca))
                    .timeout_global(Some(Duration::from_secs(3)))
            };
            let reference = {
                let a = std_agent(&pki, config);
                let url = url.clone();
                on_std_thread(move || get_bytes(&a, &url).map_err(|e| e.to_string()))
            };
            let a = tls_agent(&pki, config);
            let t = Instant::now();
            let e = get_bytes(&a, &url).unwrap_err();
            let took = t.elapsed();
            eprintln!("{what}: {e} ({e:?}) after {took:?}");
            assert!(took < Duration::from_secs(1), "{what}: {took:?}");
            assert!(!matches!(e, ureq::Error::Timeout(_)), "{what}: {e:?}");
            let msg = e.to_string().to_lowercase();
            assert!(
                msg.contains("certificate") && msg.contains(word),
                "{what}: unclear message {msg:?}"
            );
            // The expired case names the current time: digits aside.
            assert_eq!(
                Err(digits_blanked(&e.to_string())),
                reference.map(|b| b.len()).map_err(|m| digits_blanked(&m)),
                "{what}: sylvan and std ureq differ"
            );
        }
        let lax = tls_agent(&pki, |b| {
            b.tls_config(TlsConfig::builder().disable_verification(true).build())
        });
        let body = get_string(&lax, &format!("{}/hello/lax", server.extra_url(0))).unwrap();
        assert_eq!(body, "hello over tls /hello/lax\n");
        let good = tls_agent(&pki, |b| b);
        assert!(get_string(&good, &format!("{}/hello/good", server.url())).is_ok());
    });
}

/// How a response ends: close_notify or a bare FIN after a complete body
/// (`Content-Length` or close-delimited), and a `Content-Length` that
/// promises 100,000 bytes but ends after 1,000 either way. Each ends as
/// with ureq on std sockets, promptly; the complete ones are intact and
/// the lying ones are errors, never a short `Ok`.
#[test]
fn h11_close_notify_fin_and_lying_lengths() {
    let Some(pki) = Pki::new() else { return };
    let server = TlsServer::start(&pki, &[]);
    within(Duration::from_secs(9), || {
        let paths = [
            ("/full-notify", Some(5000)),
            ("/full-abrupt", Some(5000)),
            ("/eof-notify", Some(5000)),
            ("/eof-abrupt", None),
            ("/lie-notify", None),
            ("/lie-abrupt", None),
        ];
        let cfg = |b: AgentConfig| b.timeout_global(Some(Duration::from_secs(3)));
        for (path, ok_len) in paths {
            let url = format!("{}{path}", server.url());
            let reference = {
                let a = std_agent(&pki, cfg);
                let url = url.clone();
                on_std_thread(move || outcome(&get_bytes(&a, &url)))
            };
            let a = tls_agent(&pki, cfg);
            let t = Instant::now();
            let r = get_bytes(&a, &url);
            let took = t.elapsed();
            eprintln!("{path}: sylvan {}, std {reference}", outcome(&r));
            assert!(took < Duration::from_secs(1), "{path}: {took:?}");
            assert_eq!(outcome(&r), reference, "{path}: sylvan and std ureq differ");
            match ok_len {
                Some(len) => assert_eq!(r.unwrap().len(), len, "{path}"),
                None if path.starts_with("/lie") => {
                    assert!(r.is_err(), "{path}: a short body passed as complete");
                    assert!(!matches!(r, Err(ureq::Error::Timeout(_))), "{path}");
                }
                None => {}
            }
        }
    });
}

/// A pooled TLS connection that the server then closed (close_notify and
/// FIN, as an idle keep-alive timeout does) is not reused: the next
/// request opens a new connection and succeeds, as with ureq on std
/// sockets.
#[test]
fn h12_pooled_tls_connection_closed_by_the_server_is_not_reused() {
    let Some(pki) = Pki::new() else { return };
    let server = TlsServer::start(&pki, &[]);
    within(Duration::from_secs(8), || {
        /// The scenario, for either agent; `obs` polls the stats.
        fn scenario(
            a: &ureq::Agent,
            obs: &ureq::Agent,
            base: &str,
            pause: fn(Duration),
        ) -> Result<(u64, String), String> {
            let before = wait_stats("stats", obs, base, pause, |_| true);
            let bye = get_string(a, &format!("{base}/close-later")).map_err(|e| e.to_string())?;
            assert_eq!(bye, "bye\n");
            let closed = n(&before, "closed_after") + 1;
            wait_stats("the server closed it", obs, base, pause, |s| {
                n(s, "closed_after") == closed
            });
            let conns = n(&before, "conns");
            let body = get_string(a, &format!("{base}/hello/next")).map_err(|e| e.to_string())?;
            let after = wait_stats("stats", obs, base, pause, |_| true);
            Ok((n(&after, "conns") - conns, body))
        }
        let base = server.url();
        let reference = {
            let (a, obs) = (std_agent(&pki, |b| b), std_agent(&pki, |b| b));
            let base = base.clone();
            on_std_thread(move || scenario(&a, &obs, &base, std::thread::sleep))
        };
        let (a, obs) = (tls_agent(&pki, |b| b), tls_agent(&pki, |b| b));
        let got = scenario(&a, &obs, &base, sylvan::sleep);
        assert_eq!(
            got,
            Ok((2, "hello over tls /hello/next\n".to_owned())),
            "two new connections (the closed one, then a fresh one); std ureq gave {reference:?}"
        );
        assert_eq!(got, reference, "sylvan and std ureq differ");
    });
}

/// `Agent::shutdown` from another greenlet interrupts a call parked in a
/// TLS body read: it fails promptly with an error (not a timeout, not a
/// hang), as ureq documents, and the server sees the connection go.
#[test]
fn h13_agent_shutdown_interrupts_a_tls_read() {
    let Some(pki) = Pki::new() else { return };
    let server = TlsServer::start(&pki, &[]);
    within(Duration::from_secs(8), || {
        let agent = tls_agent(&pki, |b| b);
        let obs = tls_agent(&pki, |b| b.timeout_global(Some(Duration::from_secs(3))));
        let g = {
            let agent = agent.clone();
            let url = format!("{}/stall-body", server.url());
            sylvan::spawn(move || get_bytes(&agent, &url))
        };
        stats_until("the body stalled", &obs, &server, |s| {
            n(s, "stall_started") == 1
        });
        let t = Instant::now();
        agent.shutdown();
        let r = g.join().unwrap();
        let took = t.elapsed();
        assert!(took < 500 * MS, "{took:?}");
        assert!(r.is_err(), "{r:?}");
        assert!(!matches!(r, Err(ureq::Error::Timeout(_))), "{r:?}");
        stats_until("the connection closed", &obs, &server, |s| {
            n(s, "stall_closed") == 1
        });
    });
}

/// The crawler example, if built (`cargo build --examples`; `cargo test`
/// without a target filter builds it too).
fn crawler_bin() -> Option<PathBuf> {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent()?.parent()?.join("examples").join("crawler");
    if !bin.exists() {
        eprintln!(
            "{} is not built: skipped (cargo build --examples)",
            bin.display()
        );
        return None;
    }
    Some(bin)
}

/// Runs the crawler (under coreutils `timeout 8`, off the hub) on
/// `start` with `extra` options: its JSON lines and its summary. Asserts
/// that it ended normally and promptly, without a panic.
fn crawl(
    bin: &Path,
    pki: &Pki,
    start: &str,
    extra: &[&str],
) -> (Vec<serde_json::Value>, serde_json::Value) {
    let out = pki.path("crawl.jsonl");
    let stats = pki.path("crawl-stats.json");
    let mut cmd = Command::new("timeout");
    cmd.arg("8")
        .arg(bin)
        .arg(start)
        .args(["--timeout", "2", "--retries", "0", "--no-progress", "-o"])
        .arg(&out)
        .arg("--stats")
        .arg(&stats)
        .args(extra)
        .stdin(Stdio::null());
    let t = Instant::now();
    let res = on_std_thread(move || cmd.output().expect("run the crawler"));
    let took = t.elapsed();
    let stderr = String::from_utf8_lossy(&res.stderr).into_owned();
    eprintln!("crawler {extra:?}: {} in {took:?}\n{stderr}", res.status);
    assert!(res.status.success(), "{}: {stderr}", res.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let summary = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    (lines, summary)
}

/// The crawler example pointed at an https site whose certificate it
/// cannot trust (the probe CA is not among its WebPki roots): it ends
/// normally and promptly with the failure counted once on the page's
/// line, and no panic. With robots.txt on, the robots.txt fetch fails the
/// same way and the page counts as disallowed (RFC 9309: an unreachable
/// robots.txt disallows everything); with `--no-robots` the page's own
/// error names the certificate problem. No request reaches the server.
#[test]
fn h14_crawler_against_an_untrusted_https_site() {
    let Some(pki) = Pki::new() else { return };
    let Some(bin) = crawler_bin() else { return };
    if !have("timeout") {
        return;
    }
    let server = TlsServer::start(&pki, &[]);
    within(Duration::from_secs(9), || {
        let start = format!("{}/hello/start", server.url());
        for (extra, word) in [(&[][..], "robots"), (&["--no-robots"][..], "certificate")] {
            let (lines, summary) = crawl(&bin, &pki, &start, extra);
            assert_eq!(lines.len(), 1, "{lines:?}");
            assert_eq!(lines[0]["url"], start.as_str(), "{lines:?}");
            // The kind a certificate failure is counted under is h18's
            // matter; here: counted, once, and named.
            let kind = lines[0]["error"].as_str().expect("an error kind");
            if extra.is_empty() {
                assert_eq!(kind, "robots", "{lines:?}");
            }
            let message = lines[0]["message"].as_str().unwrap_or("").to_lowercase();
            assert!(message.contains(word), "{lines:?}");
            assert_eq!(summary["errors"][kind], 1, "{summary}");
            assert_eq!(summary["pages"], 1, "{summary}");
        }
        let obs = tls_agent(&pki, |b| b.timeout_global(Some(Duration::from_secs(3))));
        let s = stats(&obs, &server);
        assert_eq!(n(&s, "reqs"), 1, "only this /stats: {s}");
        assert!(n(&s, "hs_fail") >= 2, "{s}");
    });
}

// Found by this round (fixed): rustls's certificate errors reach ureq
// inside an `io::Error` (`Error::Io(InvalidData, "invalid peer
// certificate: ...")`), which the crawler's `classify` counted as
// `protocol`; its `tls` kind only ever saw ureq's own `Error::Tls`.
/// The crawler counts a page whose TLS certificate fails verification
/// under its `tls` error kind.
#[test]
fn h18_crawler_counts_a_certificate_failure_as_tls() {
    let Some(pki) = Pki::new() else { return };
    let Some(bin) = crawler_bin() else { return };
    if !have("timeout") {
        return;
    }
    let server = TlsServer::start(&pki, &[]);
    within(Duration::from_secs(9), || {
        let start = format!("{}/hello/start", server.url());
        let (lines, summary) = crawl(&bin, &pki, &start, &["--no-robots"]);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["error"], "tls", "{lines:?}");
        assert_eq!(summary["errors"]["tls"], 1, "{summary}");
    });
}

/// An upload into a server that reads nothing (it waits for the client
/// to leave): once the socket buffers fill, the write inside rustls
/// parks. `timeout_send_body` ends it with `Error::Timeout` as with ureq
/// on std sockets, a ticker runs meanwhile; `kill` of a greenlet parked
/// in such a write returns promptly; both connections close.
#[test]
fn h15_stalled_upload_times_out_and_is_killable() {
    let Some(pki) = Pki::new() else { return };
    let server = TlsServer::start(&pki, &[]);
    within(Duration::from_secs(9), || {
        quiet();
        let url = format!("{}/stall-read", server.url());
        let data = std::sync::Arc::new(vec![7u8; 64 << 20]);
        let post = |a: &ureq::Agent, url: &str, data: &[u8]| -> Result<Vec<u8>, ureq::Error> {
            a.post(url).send(data)?.body_mut().read_to_vec()
        };
        let reference = {
            let a = std_agent(&pki, |b| b.timeout_send_body(Some(300 * MS)));
            let (url, data) = (url.clone(), data.clone());
            on_std_thread(move || outcome(&post(&a, &url, &data)))
        };
        let agent = tls_agent(&pki, |b| b.timeout_send_body(Some(300 * MS)));
        let (tick, stop) = ticker();
        let t = Instant::now();
        let r = post(&agent, &url, &data);
        let took = t.elapsed();
        stop.set(true);
        let ticks = tick.join().unwrap();
        assert!(matches!(r, Err(ureq::Error::Timeout(_))), "{r:?}");
        assert_eq!(outcome(&r), reference, "sylvan and std ureq differ");
        assert!(
            took >= 280 * MS && took < Duration::from_secs(3),
            "{took:?}"
        );
        assert!(
            ticks >= 20,
            "only {ticks} ticks in {took:?}: the hub stalled"
        );

        let obs = tls_agent(&pki, |b| b.timeout_global(Some(Duration::from_secs(3))));
        stats_until("both uploads' connections closed", &obs, &server, |s| {
            n(s, "stall_closed") == 2
        });
        // No ureq timeout: a kill is the only way out of the write.
        let g = {
            let agent = tls_agent(&pki, |b| b);
            let (url, data) = (url.clone(), data.clone());
            sylvan::spawn(move || post(&agent, &url, &data))
        };
        stats_until("the third upload started", &obs, &server, |s| {
            n(s, "stall_started") == 3
        });
        // Wait (bounded) until the upload is stuck: a client socket to the
        // server with bytes in its send queue, the server reading none.
        let port = server.ports[0];
        let t = Instant::now();
        while !client_send_queue_full(port) && t.elapsed() < Duration::from_secs(2) {
            sylvan::sleep(5 * MS);
        }
        eprintln!("upload stuck in a write: {}", client_send_queue_full(port));
        let t = Instant::now();
        g.kill();
        assert!(t.elapsed() < 2000 * MS, "kill took {:?}", t.elapsed());
        assert!(g.join().unwrap_err().is_killed());
        stats_until(
            "the killed upload's connection closed",
            &obs,
            &server,
            |s| n(s, "stall_closed") == 3,
        );
    });
}

/// Whether a TCP socket of this namespace connected to `port` holds
/// unsent or unacknowledged bytes (`tx_queue` in `/proc/net/tcp`): a
/// client whose writes the server does not read. False when unreadable.
fn client_send_queue_full(port: u16) -> bool {
    let Ok(t) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    t.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let remote = f.get(2).and_then(|a| a.rsplit(':').next());
        let tx = f.get(4).and_then(|q| q.split(':').next());
        matches!((remote, tx), (Some(r), Some(tx))
            if u16::from_str_radix(r, 16) == Ok(port)
                && u64::from_str_radix(tx, 16).is_ok_and(|n| n > 0))
    })
}

/// An agent holding a pooled TLS connection, moved to another thread and
/// dropped there: no panic, and the connection's socket is sent home and
/// closed on its hub (the server sees it go) while main waits.
#[test]
fn h16_agent_with_a_pooled_tls_connection_dropped_on_another_thread() {
    let Some(pki) = Pki::new() else { return };
    let server = TlsServer::start(&pki, &[]);
    within(Duration::from_secs(8), || {
        let agent = tls_agent(&pki, |b| b.timeout_global(Some(Duration::from_secs(3))));
        let body = get_string(&agent, &format!("{}/hello/pooled", server.url())).unwrap();
        assert_eq!(body, "hello over tls /hello/pooled\n");
        let obs = tls_agent(&pki, |b| b.timeout_global(Some(Duration::from_secs(3))));
        let s = stats(&obs, &server);
        assert_eq!(n(&s, "open"), 2, "the pooled one and obs's: {s}");
        let dropped = on_std_thread(move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(agent))).is_ok()
        });
        assert!(dropped, "dropping the agent on another thread panicked");
        stats_until("the pooled connection closed", &obs, &server, |s| {
            n(s, "open") == 1
        });
    });
}

/// A CONNECT proxy on this hub: answers `CONNECT host:port` with 200 and
/// copies bytes both ways; counts the tunnels it opened.
struct ConnectProxy {
    port: u16,
    tunnels: Rc<Cell<u32>>,
    acceptor: sylvan::Greenlet<()>,
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.acceptor.kill_nowait();
    }
}

impl ConnectProxy {
    fn start() -> ConnectProxy {
        let listener = sylvan::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let tunnels = Rc::new(Cell::new(0));
        let count = tunnels.clone();
        let acceptor = sylvan::spawn(move || {
            while let Ok((c, _)) = listener.accept() {
                let count = count.clone();
                sylvan::spawn(move || {
                    let _ = ConnectProxy::tunnel(c, &count);
                });
            }
        });
        ConnectProxy {
            port,
            tunnels,
            acceptor,
        }
    }

    fn tunnel(c: sylvan::net::TcpStream, count: &Cell<u32>) -> std::io::Result<()> {
        use std::io::Write;
        use std::net::Shutdown;
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
            if (&c).read(&mut b)? == 0 {
                return Ok(());
            }
            head.push(b[0]);
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let Some(target) = text
            .strip_prefix("CONNECT ")
            .and_then(|r| r.split_whitespace().next())
        else {
            (&c).write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")?;
            return Ok(());
        };
        let up = sylvan::net::TcpStream::connect(target)?;
        count.set(count.get() + 1);
        (&c).write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
        let (c2, up2) = (c.try_clone()?, up.try_clone()?);
        let back = sylvan::spawn(move || {
            let _ = std::io::copy(&mut &up2, &mut &c2);
            let _ = c2.shutdown(Shutdown::Write);
        });
        let _ = std::io::copy(&mut &c, &mut &up);
        let _ = up.shutdown(Shutdown::Write);
        let _ = back.join();
        Ok(())
    }
}

// Found by this round (fixed): `sylvan::ureq::agent` chained only
// `SylvanConnector` and `RustlsConnector`, without ureq's
// `ConnectProxyConnector`. With a proxy set (in code, or read by ureq's
// default config from `HTTPS_PROXY`/`ALL_PROXY` and the like), ureq's `run`
// leaves the target unresolved for the proxy to resolve, so every request
// failed with `Io(ConnectionRefused, "no address to connect to")`.
/// An agent with an HTTP (CONNECT) proxy: the https request goes through
/// the proxy's tunnel and succeeds, as with ureq's own agent.
#[test]
fn h17_https_through_a_connect_proxy() {
    let Some(pki) = Pki::new() else { return };
    let server = TlsServer::start(&pki, &[]);
    within(Duration::from_secs(8), || {
        let proxy = ConnectProxy::start();
        let p = ureq::Proxy::new(&format!("http://127.0.0.1:{}", proxy.port)).unwrap();
        let cfg = |b: AgentConfig| {
            b.proxy(Some(p.clone()))
                .timeout_global(Some(Duration::from_secs(3)))
        };
        let url = format!("{}/hello/proxied", server.url());
        let reference = {
            let a = std_agent(&pki, cfg);
            let url = url.clone();
            on_std_thread(move || get_string(&a, &url).map_err(|e| e.to_string()))
        };
        assert_eq!(
            reference.as_deref(),
            Ok("hello over tls /hello/proxied\n"),
            "ureq's own agent through the proxy"
        );
        assert_eq!(proxy.tunnels.get(), 1);
        let agent = tls_agent(&pki, cfg);
        let got = get_string(&agent, &url).map_err(|e| e.to_string());
        assert_eq!(got.as_deref(), Ok("hello over tls /hello/proxied\n"));
        assert_eq!(proxy.tunnels.get(), 2, "the request went around the proxy");
    });
}

/// A SOCKS proxy, which `sylvan::ureq` does not support, fails the request
/// at once with an `Unsupported` error naming the proxy, instead of going
/// around it; a host under `NO_PROXY` still connects directly. No server is
/// needed: nothing may be dialled.
#[test]
fn h19_a_socks_proxy_is_refused_not_bypassed() {
    within(Duration::from_secs(5), || {
        let listener = sylvan::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let p = ureq::Proxy::new("socks5://127.0.0.1:9").unwrap();
        let agent = sylvan::ureq::agent(
            ureq::Agent::config_builder()
                .proxy(Some(p))
                .timeout_global(Some(Duration::from_secs(2)))
                .build(),
        );
        let e = agent
            .get(format!("http://127.0.0.1:{port}/"))
            .call()
            .expect_err("went around the SOCKS proxy");
        let msg = e.to_string();
        match &e {
            ureq::Error::Io(io) => assert_eq!(io.kind(), std::io::ErrorKind::Unsupported, "{msg}"),
            other => panic!("not an Unsupported io error: {other:?}"),
        }
        assert!(
            msg.contains("SOCKS") && msg.contains("127.0.0.1:9"),
            "the message names neither SOCKS nor the proxy: {msg}"
        );
        listener.set_nonblocking(true).unwrap();
        assert_eq!(
            listener.accept().map(|_| ()).map_err(|e| e.kind()),
            Err(std::io::ErrorKind::WouldBlock),
            "a connection was made to the target"
        );
    });
}
