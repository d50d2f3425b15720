//! The crawler example against independent loopback servers (a small
//! python3 server per test), run as a separate process as a user would.
//! Tests marked `BUG` show a defect and fail without their `ignore`.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::crawler::crawler_bin;

/// A threaded HTTP/1.1 server on 127.0.0.1, configured by environment
/// variables: `LINKS` (links of `/`), `PAGES` (also link `/p/0..PAGES`),
/// `ROBOTS_HEX` (robots.txt body), `ROBOTS_STATUS`, `ROBOTS_RESET_FIRST`
/// (reset the first n robots.txt requests). Prints its port.
const SERVER: &str = r#"
import os, socket, sys, threading
robots = bytes.fromhex(os.environ.get("ROBOTS_HEX", ""))
robots_status = os.environ.get("ROBOTS_STATUS", "200 OK")
reset_first = [int(os.environ.get("ROBOTS_RESET_FIRST", "0"))]
links = os.environ.get("LINKS", "").split()
links += ["/p/%d" % i for i in range(int(os.environ.get("PAGES", "0")))]
lock = threading.Lock()
PORT = 0

def resp(status, body, headers=(), ctype="text/html"):
    if isinstance(body, str): body = body.encode()
    h = "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n" % (status, ctype, len(body))
    for k, v in headers: h += "%s: %s\r\n" % (k, v)
    return h.encode() + b"\r\n" + body

def page(ls):
    return "<html><body>" + "".join("<a href='%s'>x</a>" % l for l in ls) + "</body></html>"

def reset(c):
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
    c.close()

def handle(c):
    f = c.makefile("rb")
    try:
        while True:
            line = f.readline(65536)
            if not line: return
            p = line.decode("latin1").split()[1]
            while f.readline(65536) not in (b"\r\n", b"\n", b""): pass
            if p == "/robots.txt":
                with lock:
                    n = reset_first[0]; reset_first[0] = max(0, n - 1)
                if n > 0: reset(c); return
                c.sendall(resp(robots_status, robots, ctype="text/plain")); continue
            if p == "/":
                c.sendall(resp("200 OK", page(links))); continue
            if p == "/frag-redirect":
                c.sendall(resp("301 Moved", "", [("Location", "/target#sec")])); continue
            if p == "/ftp-redirect":
                c.sendall(resp("302 Found", "", [("Location", "ftp://127.0.0.1:%d/f" % PORT)])); continue
            if p == "/hdr-1mb":
                c.sendall(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (1 << 20) + b"\r\nContent-Length: 0\r\n\r\n"); return
            if p == "/chunk-endless":
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n")
                chunk = b"<a href=/x>" * 1000
                while True: c.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            if p == "/cl-large":
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1000\r\n\r\nshort"); return
            if p == "/cl-small":
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\nhello"
                          b"HTTP/1.1 404 Smuggled\r\nContent-Length: 0\r\n\r\n"); continue
            if p == "/badstatus":
                c.sendall(b"HTTP/1.1 abc garbage\r\n\r\n"); return
            if p == "/http10":
                c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<a href=/http10-child>c</a>"); return
            if p == "/continue":
                c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n" + resp("200 OK", "<a href=/after-continue>x</a>")); continue
            if p == "/reset":
                reset(c); return
            c.sendall(resp("200 OK", page([]))); continue
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        try: c.close()
        except OSError: pass

s = socket.socket()
s.bind(("127.0.0.1", 0)); s.listen(128)
PORT = s.getsockname()[1]
print(PORT, flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
"#;

struct Server {
    child: Child,
    port: u16,
}

/// `GET /stats` from a test server that answers it with numbers separated
/// by spaces (probes73's and probes74's counting servers).
pub fn server_stats(port: u16) -> Vec<u64> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut s = String::new();
    c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let _ = c.read_to_string(&mut s);
    let body = s.split("\r\n\r\n").nth(1).expect("a body");
    body.split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect()
}

/// Starts the python3 server `script` with `env`, which prints its port
/// on its first line (shared with probes11).
pub fn spawn_server(script: &str, env: &[(&str, &str)]) -> (Child, u16) {
    let mut child = Command::new("python3")
        .args(["-c", script])
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let port = first.trim().parse().expect("the server prints its port");
    (child, port)
}

impl Server {
    fn start(env: &[(&str, &str)]) -> Server {
        let (child, port) = spawn_server(SERVER, env);
        Server { child, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hex(s: &[u8]) -> String {
    s.iter().map(|b| format!("{b:02x}")).collect()
}

/// A finished crawler run (shared with probes11).
pub struct Run {
    /// None: still running at the bound, killed.
    pub status: Option<ExitStatus>,
    pub lines: Vec<serde_json::Value>,
    pub stderr: String,
}

impl Run {
    /// The lines by URL path (with query), each URL checked to occur once.
    pub fn by_path(&self) -> BTreeMap<String, &serde_json::Value> {
        let mut m = BTreeMap::new();
        for l in &self.lines {
            let u = url::Url::parse(l["url"].as_str().unwrap()).unwrap();
            let key = u[url::Position::BeforePath..].to_owned();
            assert!(m.insert(key, l).is_none(), "{u} reported twice");
        }
        m
    }

    /// The paths fetched, in order.
    pub fn paths(&self) -> Vec<String> {
        self.by_path().into_keys().collect()
    }

    fn error_of(&self, path: &str) -> Option<String> {
        self.by_path()[path]["error"].as_str().map(str::to_owned)
    }
}

/// Runs the crawler with `args` (JSON lines on stdout), killing it after
/// `bound`.
pub fn run(args: &[&str], bound: Duration) -> Run {
    let mut child = Command::new(crawler_bin())
        .args(["--no-progress"])
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = t_out.join().unwrap();
    let stderr = t_err.join().unwrap();
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect();
    Run {
        status,
        lines,
        stderr,
    }
}

const BOUND: Duration = Duration::from_secs(20);

/// Crawls `server` from `/`, one page at a time, without retries.
fn crawl(server: &Server, extra: &[&str]) -> Run {
    let start = server.url("/");
    let mut args = vec![
        start.as_str(),
        "-c",
        "1",
        "--timeout",
        "2",
        "--retries",
        "0",
    ];
    args.extend_from_slice(extra);
    let r = run(&args, BOUND);
    assert!(
        r.status.is_some_and(|s| s.success()),
        "crawl failed: {:?}\n{}",
        r.status,
        r.stderr
    );
    r
}

#[test]
fn hostile_responses_are_typed_errors_and_the_summary_matches_the_lines() {
    let server = Server::start(&[(
        "LINKS",
        "/hdr-1mb /chunk-endless /cl-large /cl-small /after-small /badstatus /http10 \
         /continue /reset //other.invalid/elsewhere /a/../b/./c /q?x=1#frag /q?x=1 \
         javascript:x() mailto:a@b #top",
    )]);
    let dir = std::env::temp_dir().join(format!("sylvan-crawl2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stats = dir.join("stats.json");
    let start = server.url("/");
    let r = run(
        &[
            &start,
            "-c",
            "4",
            "--timeout",
            "2",
            "--retries",
            "0",
            "--max-body",
            "1000000",
            "--stats",
            stats.to_str().unwrap(),
        ],
        BOUND,
    );
    assert!(r.status.is_some_and(|s| s.success()), "{}", r.stderr);
    let by = r.by_path();
    let err = |p: &str| by[p]["error"].as_str();
    assert_eq!(err("/hdr-1mb"), Some("too_large"));
    assert_eq!(err("/chunk-endless"), Some("too_large"));
    assert_eq!(
        err("/cl-large"),
        Some("reset"),
        "a body shorter than its length"
    );
    assert_eq!(err("/badstatus"), Some("protocol"));
    assert_eq!(err("/reset"), Some("reset"));
    // Bytes after a body's Content-Length are not taken for the next answer.
    assert_eq!(err("/cl-small"), None);
    assert_eq!(by["/cl-small"]["bytes"], 5);
    assert_eq!(err("/after-small"), None);
    // HTTP/1.0 without a length and a 100 Continue: links still followed.
    assert_eq!(by["/http10"]["links"], 1);
    assert!(by.contains_key("/http10-child") && by.contains_key("/after-continue"));
    // Normalised once each; other hosts, schemes and fragments left out.
    assert!(by.contains_key("/b/c") && by.contains_key("/q?x=1"));
    assert!(!by.contains_key("/elsewhere"));
    assert_eq!(
        by["/"]["links"], 13,
        "javascript:, mailto: and #top are not links"
    );

    // The summary and the stats agree with the lines.
    let mut kinds: HashMap<String, u64> = HashMap::new();
    for l in &r.lines {
        if let Some(k) = l["error"].as_str() {
            *kinds.entry(k.to_owned()).or_default() += 1;
        }
    }
    let stats: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(stats["pages"], r.lines.len());
    let total: u64 = kinds.values().sum();
    for (k, n) in &kinds {
        assert_eq!(stats["errors"][k], *n, "{k}");
    }
    assert!(
        r.stderr
            .contains(&format!("crawled {} pages", r.lines.len())),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!("errors: {total} (")),
        "{}",
        r.stderr
    );
}

#[test]
fn robots_txt_missing_allows_and_unreachable_disallows_everything() {
    let missing = Server::start(&[("LINKS", "/a /b"), ("ROBOTS_STATUS", "404 Not Found")]);
    let r = crawl(&missing, &[]);
    assert_eq!(r.lines.len(), 3);
    assert!(r.lines.iter().all(|l| l["error"].is_null()));
    for status in ["500 Oops", "429 Too Many"] {
        let broken = Server::start(&[("LINKS", "/a /b"), ("ROBOTS_STATUS", status)]);
        let r = crawl(&broken, &[]);
        assert_eq!(r.lines.len(), 1, "{status}");
        assert_eq!(r.error_of("/").as_deref(), Some("robots"), "{status}");
    }
}

#[test]
fn an_unreachable_robots_txt_is_reported_with_its_cause() {
    // A port nothing listens on (bound, then closed): the robots.txt fetch
    // is refused, so nothing is fetched (RFC 9309: unreachable disallows
    // everything), and the page's message names the refusal.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let start = format!("http://127.0.0.1:{port}/");
    let r = run(&[&start, "--retries", "0", "--timeout", "2"], BOUND);
    assert!(r.status.is_some_and(|s| s.success()), "{}", r.stderr);
    assert_eq!(r.lines.len(), 1, "{:?}", r.lines);
    assert_eq!(r.lines[0]["error"], "robots", "{:?}", r.lines);
    let message = r.lines[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("robots.txt unreachable (connect: "),
        "{message}"
    );
    assert!(r.stderr.contains("errors: 1 (robots 1)"), "{}", r.stderr);
}

#[test]
fn robots_txt_wildcards_anchors_and_longest_match() {
    let robots = "User-agent: other\r\nDisallow: /\r\n\r\nUser-agent: *\r\n\
                  Disallow: /private\r\nAllow: /private/ok\r\nDisallow: /*.pdf$\r\n";
    let server = Server::start(&[
        ("LINKS", "/private/x /private/ok/1 /a.pdf /a.pdf?x /public"),
        ("ROBOTS_HEX", &hex(robots.as_bytes())),
    ]);
    let r = crawl(&server, &[]);
    assert_eq!(r.error_of("/private/x").as_deref(), Some("robots"));
    assert_eq!(r.error_of("/a.pdf").as_deref(), Some("robots"));
    for p in ["/private/ok/1", "/a.pdf?x", "/public"] {
        assert_eq!(r.error_of(p), None, "{p}");
    }
}

#[test]
fn robots_txt_own_group_with_empty_disallow_allows_everything() {
    let robots = "User-agent: sylvan-crawler\nDisallow:\n\nUser-agent: *\nDisallow: /\n";
    let server = Server::start(&[("LINKS", "/a"), ("ROBOTS_HEX", &hex(robots.as_bytes()))]);
    let r = crawl(&server, &[]);
    assert_eq!(r.error_of("/"), None, "{:?}", r.lines);
    assert_eq!(r.lines.len(), 2);
}

#[test]
fn robots_txt_other_agents_groups_do_not_apply() {
    for other in ["crawler", "s", "sylvan-crawler-pro"] {
        let robots = format!("User-agent: {other}\nDisallow: /\n");
        let server = Server::start(&[("LINKS", "/a"), ("ROBOTS_HEX", &hex(robots.as_bytes()))]);
        let r = crawl(&server, &[]);
        assert_eq!(r.error_of("/"), None, "group {other:?} applied to us");
    }
}

#[test]
fn robots_txt_non_ascii_rules_match_percent_encoded_paths() {
    let robots = "User-agent: *\nDisallow: /ünï\n";
    let server = Server::start(&[
        ("LINKS", "/ünï/x /%C3%BCn%C3%AF/y"),
        ("ROBOTS_HEX", &hex(robots.as_bytes())),
    ]);
    let r = crawl(&server, &[]);
    assert_eq!(r.error_of("/%C3%BCn%C3%AF/x").as_deref(), Some("robots"));
    assert_eq!(r.error_of("/%C3%BCn%C3%AF/y").as_deref(), Some("robots"));
}

#[test]
fn robots_txt_bom_and_cr_line_ends() {
    for robots in [
        "\u{feff}User-agent: *\nDisallow: /private\n",
        "User-agent: *\rDisallow: /private\r",
    ] {
        let server = Server::start(&[
            ("LINKS", "/private/x"),
            ("ROBOTS_HEX", &hex(robots.as_bytes())),
        ]);
        let r = crawl(&server, &[]);
        assert_eq!(
            r.error_of("/private/x").as_deref(),
            Some("robots"),
            "{robots:?}"
        );
    }
}

#[test]
fn robots_txt_fetch_is_retried_like_a_page() {
    let server = Server::start(&[("LINKS", "/a"), ("ROBOTS_RESET_FIRST", "1")]);
    let start = server.url("/");
    let r = run(
        &[
            &start,
            "-c",
            "1",
            "--timeout",
            "2",
            "--retries",
            "2",
            "--backoff-ms",
            "10",
        ],
        BOUND,
    );
    assert!(r.status.is_some_and(|s| s.success()), "{}", r.stderr);
    assert_eq!(r.error_of("/"), None, "{:?}", r.lines);
}

#[test]
fn redirect_target_with_fragment_is_not_fetched_again() {
    let server = Server::start(&[("LINKS", "/target /frag-redirect")]);
    let r = crawl(&server, &[]);
    let fetched: Vec<&str> = r
        .lines
        .iter()
        .map(|l| l["url"].as_str().unwrap())
        .filter(|u| u.contains("/target"))
        .collect();
    assert_eq!(fetched.len(), 1, "{fetched:?}");
}

#[test]
fn one_page_under_several_spellings_is_fetched_once() {
    let server = Server::start(&[("LINKS", "/%7eu /~u /%7Eu#x / /#top /?q=%61 /?q=a")]);
    let start = server.url("/#start");
    let r = run(
        &[&start, "-c", "1", "--timeout", "2", "--retries", "0"],
        BOUND,
    );
    assert!(r.status.is_some_and(|s| s.success()), "{}", r.stderr);
    let mut fetched: Vec<&str> = r.lines.iter().map(|l| l["url"].as_str().unwrap()).collect();
    fetched.sort_unstable();
    let want = ["/", "/?q=a", "/~u"].map(|p| server.url(p));
    assert_eq!(fetched, want, "{}", r.stderr);
}

#[test]
fn redirect_to_another_scheme_is_not_followed() {
    let server = Server::start(&[("LINKS", "/ftp-redirect")]);
    let r = crawl(&server, &[]);
    assert!(
        r.lines
            .iter()
            .all(|l| l["url"].as_str().unwrap().starts_with("http")),
        "{:?}",
        r.lines
    );
}

#[test]
fn max_pages_zero_ends() {
    let server = Server::start(&[]);
    let start = server.url("/");
    let r = run(&[&start, "--max-pages", "0"], Duration::from_secs(5));
    assert!(r.status.is_some(), "still running after 5 s");
    assert!(r.lines.is_empty());
}

#[test]
fn start_url_that_is_not_http_is_rejected() {
    for u in ["localhost:8000", "mailto:a@b", "file:///etc/passwd"] {
        let r = run(&[u], Duration::from_secs(5));
        let status = r
            .status
            .unwrap_or_else(|| panic!("{u}: still running after 5 s"));
        assert!(!status.success(), "{u}: exit status {status}");
        assert!(r.stderr.contains(u), "{u}: {}", r.stderr);
    }
}

#[test]
fn out_of_range_timeouts_are_rejected() {
    let server = Server::start(&[]);
    let start = server.url("/");
    for t in [
        "--timeout=nan",
        "--timeout=inf",
        "--timeout=-1",
        "--timeout=1e300",
        "--timeout=1e19",
    ] {
        let r = run(&[&start, t], Duration::from_secs(10));
        let status = r.status.expect("ends");
        assert!(
            matches!(status.code(), Some(1 | 2)),
            "{t}: exit {status}: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("panicked"), "{t}: {}", r.stderr);
    }
}

#[test]
fn a_closed_output_pipe_is_reported_once() {
    let server = Server::start(&[("PAGES", "1500")]);
    let start = server.url("/");
    let mut child = Command::new(crawler_bin())
        .args([start.as_str(), "--no-progress", "-c", "64"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert_eq!(err.matches("cannot write output").count(), 1, "{err}");
}

#[test]
fn a_bad_user_agent_is_rejected_or_its_panics_are_counted() {
    let server = Server::start(&[("LINKS", "/a")]);
    let start = server.url("/");
    let r = run(&[&start, "--user-agent", "evil\r\nX-Injected: 1"], BOUND);
    let status = r.status.expect("ends");
    let panics = r.lines.iter().filter(|l| l["error"] == "panic").count();
    assert!(
        !status.success() || panics == 1,
        "exit {status}, {} lines, {panics} panics: {}",
        r.lines.len(),
        r.stderr.lines().last().unwrap_or("")
    );
}
