//! Probe round 80: a hostile review of c199e56..603c93e.
//!
//! * The crawler's unreachable robots.txt (`rv01..rv12`): 500/502/503/599
//!   and 429, a reset, a hang under `--timeout 1`, a TLS failure,
//!   401/403/404/418/451, a redirect to a 404, a redirect loop, a Disallow
//!   rule, `--no-robots`, Ctrl-C during the fetch; three pages sharing one
//!   fetch get one message naming the cause, the kind staying `robots`.
//! * The deadlock hint (`rv20`): shown exactly when std prints no
//!   backtrace (RUST_BACKTRACE unset, "0" or empty).
//! * `Handle`'s example (`rv30`, `rv31`), catching one's own `Timeout`
//!   under nested timeouts, an outer guard and a kill, and
//!   `is_own_payload`'s warning (`rv40..rv45`).
//! * The crate page's "Coming from gevent" claims (`rv50..rv54`), the
//!   zero-length read rules (`rv60`, `rv61`) and every row of its map
//!   (`rv70`, `rv71`).
//!
//! Found and fixed since: the crate page said socket timeouts are
//! `TimedOut` "as std's do" (std on Linux says `WouldBlock`); the README
//! and `--help` did not list a robots.txt redirect loop among the cases
//! that disallow everything.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::crawler2::{Run, run, spawn_server};
use crate::util::{bounded, child_command, is_child, texts};

/// A loopback HTTP/1.1 server whose `/robots.txt` behaves as `MODE`
/// says: `status:<status line>` (empty body), `reset` (every time),
/// `hang` (reads the request, never answers), `loop` (redirects to
/// itself forever), `to404` (one redirect, then 404), `body:<hex>`
/// (200 with that body), `garbage` (answers any connection with plain
/// HTTP at once: no TLS). With `SAY` set, prints `ROBOTS` when a `hang`
/// request arrives. `/` links `LINKS`; any other page is empty.
const SERVER: &str = r#"
import os, socket, threading
mode = os.environ.get("MODE", "")
links = os.environ.get("LINKS", "").split()
hold = threading.Event()

def resp(status, body=b"", headers=()):
    h = "HTTP/1.1 %s\r\nContent-Type: text/html\r\nContent-Length: %d\r\n" % (status, len(body))
    for k, v in headers: h += "%s: %s\r\n" % (k, v)
    return h.encode() + b"\r\n" + body

def handle(c):
    if mode == "garbage":
        # Not TLS: a client's handshake fails on this answer.
        c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" * 4)
        c.close(); return
    f = c.makefile("rb")
    try:
        while True:
            line = f.readline(65536)
            if not line: return
            parts = line.decode("latin1").split()
            if len(parts) < 2: return
            p = parts[1]
            while f.readline(65536) not in (b"\r\n", b"\n", b""): pass
            if p.startswith("/robots"):
                if mode.startswith("status:"):
                    c.sendall(resp(mode[7:])); continue
                if mode == "reset":
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                    c.close(); return
                if mode == "hang":
                    if os.environ.get("SAY"): print("ROBOTS", flush=True)
                    hold.wait(); return
                if mode == "loop":
                    n = int(p.split("/")[-1]) if p.count("/") > 1 else 0
                    c.sendall(resp("302 Found", b"", [("Location", "/robots/%d" % (n + 1))])); continue
                if mode == "to404":
                    if p == "/robots.txt":
                        c.sendall(resp("301 Moved", b"", [("Location", "/robots/moved")])); continue
                    c.sendall(resp("404 Not Found")); continue
                if mode.startswith("body:"):
                    c.sendall(resp("200 OK", bytes.fromhex(mode[5:]))); continue
            if p == "/":
                body = "".join("<a href='%s'>x</a>" % l for l in links).encode()
                c.sendall(resp("200 OK", body)); continue
            c.sendall(resp("200 OK", b"<html></html>")); continue
    except OSError:
        pass
    finally:
        try: c.close()
        except OSError: pass

s = socket.socket()
s.bind(("127.0.0.1", 0)); s.listen(128)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
"#;

struct Srv(std::process::Child, u16);
impl Drop for Srv {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
fn server(mode: &str, links: &str) -> Srv {
    let (c, p) = spawn_server(SERVER, &[("MODE", mode), ("LINKS", links)]);
    Srv(c, p)
}

const BOUND: Duration = Duration::from_secs(20);

/// Crawls the server from `/`, `/a` and `/b` at once (three greenlets
/// sharing one robots.txt fetch), without retries.
fn crawl3(s: &Srv, scheme: &str, extra: &[&str]) -> Run {
    let u = |p: &str| format!("{scheme}://127.0.0.1:{}{p}", s.1);
    let (a, b, c) = (u("/"), u("/a"), u("/b"));
    let mut args = vec![
        a.as_str(),
        b.as_str(),
        c.as_str(),
        "-c",
        "3",
        "--retries",
        "0",
    ];
    if !extra.contains(&"--timeout") {
        args.extend(["--timeout", "2"]);
    }
    args.extend_from_slice(extra);
    let r = run(&args, BOUND);
    assert!(
        r.status.is_some_and(|s| s.success()),
        "{:?}\n{}",
        r.status,
        r.stderr
    );
    r
}

/// Every line is a "robots" error with one message, which is returned.
fn all_robots(r: &Run) -> String {
    assert_eq!(r.lines.len(), 3, "{:?}", r.lines);
    let m = r.lines[0]["message"].as_str().unwrap().to_owned();
    for l in &r.lines {
        assert_eq!(l["error"], "robots", "{l}");
        assert_eq!(l["message"], m.as_str(), "{l}");
        assert!(l["status"].is_null(), "nothing fetched: {l}");
    }
    assert!(r.stderr.contains("errors: 3 (robots 3)"), "{}", r.stderr);
    m
}

#[test]
fn rv01_robots_503_names_the_status() {
    let s = server("status:503 Service Unavailable", "");
    let m = all_robots(&crawl3(&s, "http", &[]));
    assert_eq!(
        m,
        "robots.txt unreachable (status: HTTP 503), so everything is disallowed"
    );
}

#[test]
fn rv02_robots_429_names_the_status() {
    let s = server("status:429 Too Many Requests", "");
    let m = all_robots(&crawl3(&s, "http", &[]));
    assert_eq!(
        m,
        "robots.txt unreachable (status: HTTP 429), so everything is disallowed"
    );
}

#[test]
fn rv03_robots_4xx_but_429_allows_everything() {
    for st in [
        "404 Not Found",
        "418 I'm a teapot",
        "401 Unauthorized",
        "403 Forbidden",
        "451 Legal",
    ] {
        let s = server(&format!("status:{st}"), "/c /d");
        let r = crawl3(&s, "http", &[]);
        assert_eq!(r.lines.len(), 5, "{st}: {:?}", r.lines);
        assert!(
            r.lines.iter().all(|l| l["error"].is_null()),
            "{st}: {:?}",
            r.lines
        );
    }
}

#[test]
fn rv04_robots_reset_names_the_reset() {
    let s = server("reset", "");
    let m = all_robots(&crawl3(&s, "http", &[]));
    assert!(m.starts_with("robots.txt unreachable (reset: "), "{m}");
    assert!(m.ends_with("), so everything is disallowed"), "{m}");
}

#[test]
fn rv05_robots_timeout_names_the_timeout() {
    let s = server("hang", "");
    let t = Instant::now();
    let m = all_robots(&crawl3(&s, "http", &["--timeout", "1"]));
    assert_eq!(
        m,
        "robots.txt unreachable (timeout: no answer within 1s), so everything is disallowed"
    );
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[test]
fn rv06_robots_5xx_other_codes() {
    for (st, code) in [
        ("500 Oops", 500),
        ("502 Bad Gateway", 502),
        ("599 Odd", 599),
    ] {
        let s = server(&format!("status:{st}"), "");
        let m = all_robots(&crawl3(&s, "http", &[]));
        assert_eq!(
            m,
            format!("robots.txt unreachable (status: HTTP {code}), so everything is disallowed")
        );
    }
}

#[test]
fn rv07_robots_redirected_to_a_404_allows_everything() {
    let s = server("to404", "/c");
    let r = crawl3(&s, "http", &[]);
    assert_eq!(r.lines.len(), 4, "{:?}", r.lines);
    assert!(
        r.lines.iter().all(|l| l["error"].is_null()),
        "{:?}",
        r.lines
    );
}

/// A robots.txt redirect loop: RFC 9309 2.3.1.2 lets a crawler treat it
/// as unavailable (allow everything) or not; this crawler disallows
/// everything, as its --help and README say, and names the cause.
#[test]
fn rv08_robots_redirect_loop_disallows_everything() {
    let s = server("loop", "/c");
    let m = all_robots(&crawl3(&s, "http", &[]));
    assert_eq!(
        m,
        "robots.txt unreachable (redirect: too many redirects), so everything is disallowed"
    );
}

#[test]
fn rv09_robots_bad_tls_names_the_cause() {
    // https to a plain-HTTP server: the handshake fails.
    let s = server("garbage", "");
    let m = all_robots(&crawl3(&s, "https", &[]));
    assert!(!m.contains("(timeout: "), "{m}");
    assert!(m.starts_with("robots.txt unreachable ("), "{m}");
    assert!(m.ends_with("), so everything is disallowed"), "{m}");
    eprintln!("tls message: {m}");
}

#[test]
fn rv10_a_disallow_rule_keeps_its_old_message_and_no_robots_ignores_5xx() {
    let hex: String = b"User-agent: *\nDisallow: /a\n"
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let s = server(&format!("body:{hex}"), "");
    let r = crawl3(&s, "http", &[]);
    let by = r.by_path();
    assert_eq!(by["/a"]["error"], "robots");
    assert_eq!(by["/a"]["message"], "disallowed by robots.txt");
    assert!(by["/"]["error"].is_null() && by["/b"]["error"].is_null());
    let s = server("status:503 Down", "");
    let r = crawl3(&s, "http", &["--no-robots"]);
    assert!(
        r.lines.iter().all(|l| l["error"].is_null()),
        "{:?}",
        r.lines
    );
}

/// Ctrl-C while the robots.txt fetch hangs, three pages waiting on it:
/// the crawler exits 130 at once; a page that reports at all reports
/// the fetch as cut short (the message the greenlet's drop guard sets).
#[test]
fn rv12_sigint_during_the_robots_fetch() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut srv = Command::new("python3")
        .args(["-c", SERVER])
        .env("MODE", "hang")
        .env("SAY", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut srv_out = std::io::BufReader::new(srv.stdout.take().unwrap());
    let mut port = String::new();
    srv_out.read_line(&mut port).unwrap();
    let port: u16 = port.trim().parse().unwrap();
    let u = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let mut crawler = Command::new(crate::crawler::crawler_bin())
        .args([
            "--no-progress",
            &u("/"),
            &u("/a"),
            &u("/b"),
            "-c",
            "3",
            "--retries",
            "0",
            "--timeout",
            "30",
        ])
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The server says when the robots.txt request has arrived.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut l = String::new();
        let _ = srv_out.read_line(&mut l);
        let _ = tx.send(l);
    });
    let got = rx.recv_timeout(Duration::from_secs(20));
    // SAFETY: signals a child process of ours.
    unsafe { libc::kill(crawler.id() as i32, libc::SIGINT) };
    let (tx, rx) = std::sync::mpsc::channel();
    let mut out = crawler.stdout.take().unwrap();
    let mut err = crawler.stderr.take().unwrap();
    std::thread::spawn(move || {
        let (mut o, mut e) = (String::new(), String::new());
        let _ = out.read_to_string(&mut o);
        let _ = err.read_to_string(&mut e);
        let _ = tx.send((o, e));
    });
    let texts = rx.recv_timeout(Duration::from_secs(10));
    let status = if texts.is_ok() {
        crawler.wait().ok()
    } else {
        None
    };
    let _ = crawler.kill();
    let _ = crawler.wait();
    let _ = srv.kill();
    let _ = srv.wait();
    assert_eq!(got.as_deref().map(str::trim), Ok("ROBOTS"));
    let (o, e) = texts.expect("the crawler ends soon after SIGINT");
    assert_eq!(status.and_then(|s| s.code()), Some(130), "{e}");
    eprintln!("rv12 stdout:\n{o}\nrv12 stderr:\n{e}");
    for l in o.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["error"], "robots", "{l}");
        assert_eq!(
            v["message"], "robots.txt not fetched: its fetch was cut short",
            "{l}"
        );
    }
}

#[test]
fn rv11_help_mentions_the_unreachable_rule() {
    let out = std::process::Command::new(crate::crawler::crawler_bin())
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("unreachable"), "{help}");
}

// ---------------------------------------------------------------
// hub/src/hub/mod.rs: the deadlock hint.

const DEADLOCK: &str = "probes80::rv20_deadlock_hint_follows_rust_backtrace";

#[inline(never)]
fn main_blocks_here_rv20() {
    sylvan::sync::Event::new().wait();
}

#[test]
fn rv20_deadlock_hint_follows_rust_backtrace() {
    if is_child("rv20") {
        let r = catch_unwind(main_blocks_here_rv20);
        let p = r.unwrap_err();
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap();
        println!("MSG<{msg}>");
        return;
    }
    const HINT: &str = "; run with RUST_BACKTRACE=1 to see where main blocked";
    for v in [None, Some("0"), Some("1"), Some("full"), Some("")] {
        let mut c = child_command(DEADLOCK, "rv20");
        if let Some(v) = v {
            c.env("RUST_BACKTRACE", v);
        }
        let out = c.output().unwrap();
        let (o, e) = texts(&out);
        let msg = o
            .split("MSG<")
            .nth(1)
            .and_then(|m| m.split('>').next())
            .unwrap_or_else(|| panic!("{v:?}: no message\n{o}\n{e}"));
        assert!(msg.contains("would block forever"), "{msg}");
        let std_backtrace = e.contains("stack backtrace:");
        // The hint is there exactly when std prints no backtrace.
        assert_eq!(msg.ends_with(HINT), !std_backtrace, "{v:?}: {msg}\n{e}");
        assert_eq!(msg.matches(HINT).count(), usize::from(!std_backtrace));
        if std_backtrace {
            // The promise: the backtrace shows where main blocked.
            assert!(e.contains("main_blocks_here_rv20"), "{v:?}:\n{e}");
        }
        match v {
            None | Some("0") => assert!(msg.ends_with(HINT)),
            _ => assert!(!msg.contains(HINT)),
        }
    }
}

// ---------------------------------------------------------------
// hub/src/handle.rs: the Handle example.

thread_local! {
    static ROUND: RefCell<Option<Rc<sylvan::sync::Event>>> = const { RefCell::new(None) };
    static DONE_N: Cell<u32> = const { Cell::new(0) };
}

#[test]
fn rv30_handle_example_pattern_many_times() {
    bounded(|| {
        for i in 0..300u32 {
            let ev = Rc::new(sylvan::sync::Event::new());
            ROUND.with(|r| *r.borrow_mut() = Some(ev.clone()));
            let handle = sylvan::Handle::current();
            let keep = handle.keep_alive();
            let worker = std::thread::spawn(move || {
                let answer = i * 2;
                handle
                    .spawn(move || {
                        assert_eq!(answer, i * 2);
                        DONE_N.with(|d| d.set(d.get() + 1));
                        ROUND.with(|r| r.borrow().as_ref().unwrap().set());
                    })
                    .expect("the hub's thread is still running");
                drop(keep);
            });
            ev.wait();
            worker.join().unwrap();
        }
        assert_eq!(DONE_N.with(Cell::get), 300);
    });
}

/// The example's comment: without the guard the wait panics with "would
/// block forever" (the job not sent yet).
#[test]
fn rv31_without_keep_alive_the_wait_panics() {
    let ev = sylvan::sync::Event::new();
    let handle = sylvan::Handle::current();
    let (go, gate) = std::sync::mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        gate.recv().unwrap();
        let _ = handle.spawn(|| ());
    });
    let r = catch_unwind(AssertUnwindSafe(|| ev.wait()));
    let p = r.expect_err("the wait must panic");
    let msg = p.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("would block forever"), "{msg}");
    go.send(()).unwrap();
    worker.join().unwrap();
    bounded(|| sylvan::wait_all(Some(Duration::from_secs(2))));
}

// ---------------------------------------------------------------
// hub/src/time.rs: catching one's own Timeout.

/// The doc example's pattern: Some(true) when its own timeout was
/// caught; other unwinds pass on.
fn own_timeout_pattern(d: Duration, log: &crate::util::Log) -> bool {
    let timeout = sylvan::Timeout::start(d);
    match catch_unwind(AssertUnwindSafe(|| sylvan::sleep(Duration::from_secs(10)))) {
        Ok(()) => false,
        Err(p) if timeout.is_own_payload(&*p) => {
            log.push("own");
            true
        }
        Err(p) => {
            log.push("passed on");
            resume_unwind(p)
        }
    }
}

#[test]
fn rv40_doc_pattern_catches_its_own_in_main_and_in_a_greenlet() {
    bounded(|| {
        let log = crate::util::Log::default();
        assert!(own_timeout_pattern(Duration::from_millis(10), &log));
        let l2 = log.clone();
        let g = sylvan::spawn(move || own_timeout_pattern(Duration::from_millis(10), &l2));
        assert!(g.join().unwrap());
        assert_eq!(log.take(), ["own", "own"]);
    });
}

#[test]
fn rv41_nested_with_timeout_passes_through_and_inner_wins_when_shorter() {
    bounded(|| {
        let log = crate::util::Log::default();
        let r = sylvan::with_timeout(Duration::from_millis(20), || {
            own_timeout_pattern(Duration::from_secs(5), &log)
        });
        assert!(r.is_err(), "the outer with_timeout ends it");
        assert_eq!(log.take(), ["passed on"]);
        let r = sylvan::with_timeout(Duration::from_secs(5), || {
            own_timeout_pattern(Duration::from_millis(10), &log)
        });
        assert_eq!(r.ok(), Some(true));
        assert_eq!(log.take(), ["own"]);
        // Both due: the inner one (shorter) first.
        let r = sylvan::with_timeout(Duration::from_millis(30), || {
            own_timeout_pattern(Duration::from_millis(10), &log);
            sylvan::sleep(Duration::from_secs(5));
        });
        assert!(r.is_err());
        assert_eq!(log.take(), ["own"]);
    });
}

#[test]
fn rv42_a_kill_passes_through_the_pattern() {
    bounded(|| {
        crate::util::quiet();
        let log = crate::util::Log::default();
        let started = Rc::new(sylvan::sync::Event::new());
        let (l2, s2) = (log.clone(), started.clone());
        let g = sylvan::spawn(move || {
            s2.set();
            own_timeout_pattern(Duration::from_secs(5), &l2)
        });
        started.wait();
        sylvan::yield_now();
        g.kill();
        assert!(g.join().unwrap_err().is_killed());
        assert_eq!(log.take(), ["passed on"]);
    });
}

#[test]
fn rv43_outer_timeout_guard_with_the_same_pattern() {
    bounded(|| {
        let log = crate::util::Log::default();
        let outer = sylvan::Timeout::start(Duration::from_millis(20));
        let r = catch_unwind(AssertUnwindSafe(|| {
            own_timeout_pattern(Duration::from_secs(5), &log)
        }));
        let p = r.unwrap_err();
        assert!(outer.is_own_payload(&*p));
        assert_eq!(log.take(), ["passed on"]);
    });
}

#[test]
fn rv44_matched_then_resumed_in_a_greenlet_ends_it_as_a_timeout() {
    bounded(|| {
        crate::util::quiet();
        let fired = Rc::new(Cell::new(false));
        let g = sylvan::spawn(|| {
            let t = sylvan::Timeout::start(Duration::from_millis(10));
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(Duration::from_secs(5))))
            {
                assert!(t.is_own_payload(&*p));
                resume_unwind(p);
            }
        });
        let f2 = fired.clone();
        g.link_exception(move |e| f2.set(e.is_timeout()));
        assert!(g.join().unwrap_err().is_timeout());
        assert!(fired.get(), "link_exception fired with TimedOut");
    });
}

const PRINTS: &str = "probes80::rv45_matched_then_resumed_in_main_prints_nothing";
#[test]
fn rv45_matched_then_resumed_in_main_prints_nothing() {
    if is_child("rv45m") || is_child("rv45u") {
        let t = sylvan::Timeout::start(Duration::from_millis(10));
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(Duration::from_secs(5)))) {
            if is_child("rv45m") {
                assert!(t.is_own_payload(&*p));
            }
            resume_unwind(p);
        }
        return;
    }
    let msg = "a Timeout expired and nothing caught it";
    let (_, matched) = texts(&child_command(PRINTS, "rv45m").output().unwrap());
    let (_, unmatched) = texts(&child_command(PRINTS, "rv45u").output().unwrap());
    assert!(!matched.contains(msg), "{matched}");
    assert!(unmatched.contains(msg), "{unmatched}");
}

// ---------------------------------------------------------------
// src/lib.rs: "Coming from gevent".

#[test]
fn rv50_uncaught_timeout_guard_ends_the_greenlet_with_timed_out() {
    bounded(|| {
        crate::util::quiet();
        let seen = Rc::new(RefCell::new(None));
        let g = sylvan::spawn(|| {
            let _t = sylvan::Timeout::start(Duration::from_millis(5));
            sylvan::sleep(Duration::from_secs(5));
        });
        let s2 = seen.clone();
        g.link_exception(move |e| *s2.borrow_mut() = Some(e.is_timeout()));
        assert!(matches!(g.join(), Err(sylvan::Error::TimedOut)));
        assert_eq!(*seen.borrow(), Some(true));
    });
}

/// "socket timeouts return an `io::Error` of kind `TimedOut` (where `std`
/// on Linux says `WouldBlock`)" (src/lib.rs).
#[test]
fn rv51_socket_timeouts_are_timed_out_where_std_says_would_block() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let _s = l.accept().unwrap();
    c.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    let std_kind = c.read(&mut [0; 4]).unwrap_err().kind();
    let sylvan_kind = bounded(|| {
        let (mut a, _b) = crate::util::tcp_pair();
        a.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        a.read(&mut [0; 4]).unwrap_err().kind()
    });
    assert_eq!(sylvan_kind, std::io::ErrorKind::TimedOut);
    assert_eq!(std_kind, std::io::ErrorKind::WouldBlock);
}

const NOTHING: &str = "probes80::rv52_spawn_then_return_runs_nothing";
#[test]
fn rv52_spawn_then_return_runs_nothing() {
    if is_child("rv52") {
        let _g = sylvan::spawn(|| println!("GREENLET RAN"));
        println!("MAIN DONE");
        return;
    }
    let (o, e) = texts(&child_command(NOTHING, "rv52").output().unwrap());
    assert!(o.contains("MAIN DONE"), "{o}\n{e}");
    assert!(!o.contains("GREENLET RAN"), "{o}\n{e}");
}

#[test]
fn rv53_wait_all_none_runs_everything() {
    {
        let n = Rc::new(Cell::new(0));
        for i in 0..5u64 {
            let n = n.clone();
            sylvan::spawn(move || {
                sylvan::sleep(Duration::from_millis(i));
                n.set(n.get() + 1);
            });
        }
        assert!(sylvan::wait_all(None));
        assert_eq!(n.get(), 5);
    }
}

#[test]
fn rv54_join_tells_kill_panic_and_timeout_apart() {
    bounded(|| {
        crate::util::quiet();
        let k = sylvan::spawn(|| sylvan::sleep(Duration::from_secs(5)));
        sylvan::yield_now();
        k.kill();
        assert!(matches!(k.join(), Err(sylvan::Error::Killed)));
        let p = sylvan::spawn(|| panic!("boom 72"));
        match p.join() {
            Err(sylvan::Error::Panicked(pa)) => assert!(format!("{pa:?}").contains("boom 72")),
            other => panic!("{:?}", other.err()),
        }
        let t = sylvan::spawn(|| {
            let _t = sylvan::Timeout::start(Duration::from_millis(1));
            sylvan::sleep(Duration::from_secs(5));
        });
        assert!(t.join().unwrap_err().is_timeout());
    });
}

// ---------------------------------------------------------------
// hub/src/net/mod.rs: zero-length reads.

#[test]
fn rv60_zero_length_read_and_peek_wait_then_return_zero() {
    bounded(|| {
        let (mut a, b) = crate::util::tcp_pair();
        let b = Rc::new(b);
        a.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let t = Instant::now();
        assert_eq!(a.read(&mut []).unwrap(), 0);
        assert!(
            t.elapsed() >= Duration::from_millis(45),
            "{:?}",
            t.elapsed()
        );
        let t = Instant::now();
        assert_eq!(a.peek(&mut []).unwrap(), 0);
        assert!(
            t.elapsed() >= Duration::from_millis(45),
            "{:?}",
            t.elapsed()
        );
        // Data waiting: at once.
        (&*b).write_all(b"x").unwrap();
        let mut one = [0u8; 1];
        assert_eq!(a.peek(&mut one).unwrap(), 1);
        let t = Instant::now();
        assert_eq!(a.read(&mut []).unwrap(), 0);
        assert_eq!(a.peek(&mut []).unwrap(), 0);
        assert!(t.elapsed() < Duration::from_millis(45), "{:?}", t.elapsed());
        assert_eq!(a.read(&mut one).unwrap(), 1);
        // Data arriving later wakes it before the timeout.
        a.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let b2 = b.clone();
        let w = sylvan::spawn_later(Duration::from_millis(20), move || {
            (&*b2).write_all(b"y").unwrap()
        });
        let t = Instant::now();
        assert_eq!(a.read(&mut []).unwrap(), 0);
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        w.join().unwrap();
        // No read timeout: a with_timeout unwinds it.
        a.set_read_timeout(None).unwrap();
        assert_eq!(a.read(&mut one).unwrap(), 1);
        assert!(sylvan::with_timeout(Duration::from_millis(20), || a.read(&mut [])).is_err());
    });
}

#[test]
fn rv61_std_zero_length_read_on_linux_as_documented() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let _s = l.accept().unwrap();
    c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let t = Instant::now();
    let r = c.read(&mut []);
    let el = t.elapsed();
    assert_eq!(r.unwrap(), 0);
    assert!(el >= Duration::from_millis(45), "std waited {el:?}");
}

// ---------------------------------------------------------------
// src/lib.rs: the "Where things are" table.

sylvan::greenlet_local! {
    static RV_LOCAL: u32 = 7;
}

#[test]
fn rv70_every_row_of_the_map_names_items_that_do_what_it_says() {
    bounded(|| {
        crate::util::quiet();
        // start, wait for and stop greenlets
        let g: sylvan::Greenlet<u32> = sylvan::Builder::new()
            .name("rv70")
            .stack_size(256 << 10)
            .spawn(|| 1)
            .unwrap();
        assert_eq!(g.name(), Some("rv70"));
        let linked = Rc::new(Cell::new(0));
        let l2 = linked.clone();
        g.link(move |_| l2.set(l2.get() + 1));
        let l3 = linked.clone();
        g.link_value(move |v| l3.set(l3.get() + *v));
        g.link_exception(|_| unreachable!());
        assert!(g.wait(None));
        assert_eq!(g.join().unwrap(), 1);
        assert_eq!(linked.get(), 2);
        let later = sylvan::spawn_later(Duration::from_millis(1), || 2u32);
        let slow = sylvan::spawn(|| sylvan::sleep(Duration::from_secs(5)));
        assert!(sylvan::joinall(std::slice::from_ref(&later), None));
        sylvan::killall(std::slice::from_ref(&slow), None).unwrap();
        assert!(slow.is_dead());
        slow.kill();
        // time
        sylvan::sleep(Duration::from_millis(1));
        sylvan::yield_now();
        let e: Result<(), sylvan::Elapsed> = sylvan::with_timeout(Duration::from_millis(1), || {
            sylvan::sleep(Duration::from_secs(1))
        });
        assert!(e.is_err());
        drop(sylvan::Timeout::start(Duration::from_secs(1)));
        // wait for several things
        let ev = sylvan::sync::Event::new();
        ev.set();
        let w: &dyn sylvan::Waitable = &ev;
        assert_eq!(sylvan::wait(&[w], None, None), [0]);
        assert_eq!(sylvan::iwait(&[w], None).collect::<Vec<_>>(), [0]);
        // coordinate
        let _ = (
            sylvan::sync::AsyncResult::<u8>::new(),
            sylvan::sync::Semaphore::new(1),
            sylvan::sync::BoundedSemaphore::new(1),
            sylvan::sync::Mutex::new(0u8),
            sylvan::sync::Queue::<u8>::unbounded(),
            sylvan::sync::LifoQueue::<u8>::unbounded(),
            sylvan::sync::PriorityQueue::<u8>::unbounded(),
            sylvan::sync::JoinableQueue::<u8>::unbounded(),
            sylvan::sync::Channel::<u8>::new(),
        );
        // bound concurrency
        let pool = sylvan::pool::Pool::new(2);
        assert_eq!(pool.spawn(|| 3).join().unwrap(), 3);
        assert_eq!(
            pool.map(vec![1u32, 2], |x| x * 2)
                .into_iter()
                .map(Result::unwrap)
                .collect::<Vec<_>>(),
            [2, 4]
        );
        let group = sylvan::pool::Group::new();
        assert_eq!(group.spawn(|| 4).join().unwrap(), 4);
        assert_eq!(
            group
                .map(vec![1u32], |x| x + 1)
                .into_iter()
                .map(Result::unwrap)
                .collect::<Vec<_>>(),
            [2]
        );
        assert_eq!(
            group
                .imap(vec![5u32], |x| x)
                .map(Result::unwrap)
                .collect::<Vec<_>>(),
            [5]
        );
        assert_eq!(
            group
                .imap_unordered(vec![6u32], |x| x)
                .map(Result::unwrap)
                .collect::<Vec<_>>(),
            [6]
        );
        // sockets
        let l = sylvan::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _ = sylvan::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let _ = sylvan::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let _ = sylvan::net::UnixStream::pair().unwrap();
        let _: Option<sylvan::net::StreamServer> = None;
        let _: Option<sylvan::net::UnixListener> = None;
        // pipes, child processes, other descriptors
        let mut child = std::process::Command::new("true").spawn().unwrap();
        assert!(sylvan::os::wait_child(&mut child).unwrap().success());
        let _: Option<sylvan::os::Fd<std::fs::File>> = None;
        // blocking calls and other threads
        assert_eq!(sylvan::spawn_blocking(|| 8), 8);
        let (tx, rx) = sylvan::mpsc::channel();
        std::thread::spawn(move || tx.send(9).unwrap());
        assert_eq!(rx.recv().unwrap(), 9);
        let _ = sylvan::Handle::current();
        // per-greenlet values
        let _: &sylvan::GreenletLocal<u32> = &RV_LOCAL;
        assert_eq!(sylvan::spawn(|| RV_LOCAL.with(|v| *v)).join().unwrap(), 7);
        // failures
        let _: Option<sylvan::Error> = None;
        sylvan::set_error_policy(sylvan::ErrorPolicy::Custom(Rc::new(|_| {})));
        // looking inside
        let _ = sylvan::dump();
        let _ = sylvan::stats();
        let _d = sylvan::BlockingDetector::start(Duration::from_secs(1));
        let h = sylvan::signal(libc::SIGUSR2, || ()).unwrap();
        drop(h);
    });
}

// HTTP: `sylvan::ureq` (with the `ureq` feature).
#[cfg(feature = "ureq")]
#[test]
fn rv71_ureq_row() {
    let _ = sylvan::ureq::agent;
}
