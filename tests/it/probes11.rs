//! Adversarial probes, round 11: the crawler binary against hand-made sites
//! (a python3 server per test) as a user would run it on real-world HTML.
//! Tests marked `BUG` show a defect and fail without their `ignore`.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Child;
use std::time::{Duration, Instant};

use crate::crawler2::{Run, run, spawn_server};

/// A threaded HTTP/1.1 server on 127.0.0.1. `ROUTES` is a Python expression
/// (evaluated once the port is known, as `PORT`) giving a dict from the raw
/// request target to a body (str or bytes, served as text/html) or to
/// `R(body, status, ctype, headers, gz, sleep)`. Other paths get an empty
/// page, `/robots.txt` a 404. `/__log` answers with the request counts by
/// target, as JSON. Prints its port.
const SERVER: &str = r#"
import gzip, json, os, socket, threading, time
lock = threading.Lock()
log = {}

def page(ls, q="'"):
    return "<html><body>" + "".join("<a href=%s%s%s>x</a>" % (q, l, q) for l in ls) + "</body></html>"

def R(body, status="200 OK", ctype="text/html", headers=(), gz=False, sleep=0):
    return dict(body=body, status=status, ctype=ctype, headers=list(headers), gz=gz, sleep=sleep)

def resp(c, r):
    body = r["body"]
    if isinstance(body, str): body = body.encode()
    hs = list(r["headers"])
    if r["gz"]:
        body = gzip.compress(body); hs.append(("Content-Encoding", "gzip"))
    h = b"HTTP/1.1 " + r["status"].encode() + b"\r\n"
    if r["ctype"] is not None: h += b"Content-Type: " + r["ctype"].encode("latin1") + b"\r\n"
    h += b"Content-Length: %d\r\n" % len(body)
    for k, v in hs:
        if isinstance(v, str): v = v.encode("latin1")
        h += k.encode() + b": " + v + b"\r\n"
    c.sendall(h + b"\r\n" + body)

def handle(c):
    f = c.makefile("rb")
    try:
        while True:
            line = f.readline(1 << 20)
            if not line: return
            p = line.decode("latin1").split()[1]
            while f.readline(65536) not in (b"\r\n", b"\n", b""): pass
            if p == "/__log":
                with lock: body = json.dumps(log)
                resp(c, R(body, ctype="application/json", headers=[("Connection", "close")]))
                return
            with lock: log[p] = log.get(p, 0) + 1
            r = ROUTES.get(p)
            if r is None:
                r = R("", "404 Not Found", "text/plain") if p == "/robots.txt" else R(page([]))
            elif not isinstance(r, dict):
                r = R(r)
            if r["sleep"]: time.sleep(r["sleep"])
            resp(c, r)
            if CLOSE_AFTER is not None:
                time.sleep(CLOSE_AFTER); return
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        try: c.close()
        except OSError: pass

s = socket.socket()
s.bind(("127.0.0.1", 0)); s.listen(128)
PORT = s.getsockname()[1]
OTHER = int(os.environ.get("OTHER", "0"))
CLOSE_AFTER = float(os.environ["CLOSE_AFTER"]) if "CLOSE_AFTER" in os.environ else None
ROUTES = eval(os.environ.get("ROUTES", "{}"))
print(PORT, flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
"#;

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(routes: &str) -> Server {
        Server::start_with(routes, 0)
    }

    /// `other` is available to the routes as `OTHER`.
    fn start_with(routes: &str, other: u16) -> Server {
        Server::start_env(routes, &[("OTHER", &other.to_string())])
    }

    /// With more environment for the server (`OTHER`, `CLOSE_AFTER`: close
    /// each connection this many seconds after its first answer).
    fn start_env(routes: &str, env: &[(&str, &str)]) -> Server {
        let env: Vec<(&str, &str)> = [("ROUTES", routes)]
            .into_iter()
            .chain(env.iter().copied())
            .collect();
        let (child, port) = spawn_server(SERVER, &env);
        Server { child, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Request counts by raw request target (robots.txt included).
    fn log(&self) -> HashMap<String, u64> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /__log HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut all = String::new();
        s.read_to_string(&mut all).unwrap();
        let body = all.split_once("\r\n\r\n").unwrap().1;
        serde_json::from_str(body).unwrap()
    }

    /// The pages requested (not robots.txt), each with its count.
    fn pages(&self) -> BTreeMap<String, u64> {
        self.log()
            .into_iter()
            .filter(|(p, _)| p != "/robots.txt")
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const BOUND: Duration = Duration::from_secs(8);

/// Crawls `server` from `path`, one page at a time, without retries; checks
/// the exit status and that the summary counts the lines.
fn crawl_from(server: &Server, path: &str, extra: &[&str]) -> Run {
    let start = server.url(path);
    let mut args = vec![start.as_str(), "--timeout", "2", "--retries", "0"];
    if !extra.contains(&"-c") {
        args.extend(["-c", "1"]);
    }
    args.extend_from_slice(extra);
    let r = run(&args, BOUND);
    assert!(
        r.status.is_some_and(|s| s.success()),
        "crawl failed: {:?}\n{}",
        r.status,
        r.stderr
    );
    assert!(
        r.stderr
            .contains(&format!("crawled {} pages", r.lines.len())),
        "{}",
        r.stderr
    );
    r
}

fn crawl(server: &Server, extra: &[&str]) -> Run {
    crawl_from(server, "/", extra)
}

fn strs(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

#[test]
fn base_href_relative_first_only_and_for_later_links() {
    let server = Server::start(
        r#"{"/": page(["/dir/page"]),
            "/dir/page": "<a href=before>b</a><base href='../b/'><base href='/z/'><a href=x>x</a>"}"#,
    );
    let r = crawl(&server, &[]);
    assert_eq!(
        r.paths(),
        strs(&["/", "/dir/page", "/dir/before", "/b/x"]),
        "{:?}",
        r.lines
    );
}

#[test]
fn area_frame_and_iframe_links_are_followed() {
    let server = Server::start(
        r#"{"/": ("<map><area shape=rect href=/area></map><frameset><frame src=/frame></frameset>"
                  "<iframe src='/iframe'><a href=/inside-iframe></iframe><img src=/img><link href=/css>")}"#,
    );
    let r = crawl(&server, &[]);
    assert_eq!(r.paths(), strs(&["/", "/area", "/frame", "/iframe"]));
    assert_eq!(r.by_path()["/"]["links"], 3);
}

#[test]
fn quoting_entities_whitespace_and_relative_forms() {
    let server = Server::start(
        r#"{"/": ("<a href=/unq>u</a><a href='/single'>s</a><a href=\"/ent?a=1&amp;b=2\">e</a>"
                  "<a href='&#47;slash&#x2F;x'>e</a><a href='\n  /ws\tpace \n'>w</a>"
                  "<a href='/new\nline'>n</a><a href='HTTP://127.0.0.1:%d/upper'>U</a>"
                  "<a href='//127.0.0.1:%d/schemerel'>s</a><a href='/d/a/../b/./c'>d</a>"
                  "<a href='?q=1'>q</a><a href='#frag'>f</a><a href='javascript:go()'>j</a>"
                  "<a href='JavaScript:go()'>j</a><a href='mailto:a@b'>m</a><a href='data:text/html,x'>d</a>"
                  "<a href='tel:+1'>t</a><a href=' javascript:x'>j</a><a>none</a><a href>e</a><a href=''>e</a>"
                  ) % (PORT, PORT)}"#,
    );
    let r = crawl(&server, &[]);
    assert_eq!(
        r.paths(),
        strs(&[
            "/",
            "/unq",
            "/single",
            "/ent?a=1&b=2",
            "/slash/x",
            "/wspace",
            "/newline",
            "/upper",
            "/schemerel",
            "/d/b/c",
            "/?q=1",
        ]),
        "{:?}",
        r.lines
    );
    assert_eq!(r.by_path()["/"]["links"], 10);
}

#[test]
fn legacy_named_references_in_a_query_are_not_decoded() {
    // In an attribute, `&copy=` and `&lang=` (no `;`, then `=`) stay as
    // written, as browsers read them.
    let server = Server::start(r#"{"/": "<a href='/s?a=1&copy=2&lang=en&not=3'>x</a>"}"#);
    let r = crawl(&server, &[]);
    assert_eq!(r.paths(), strs(&["/", "/s?a=1&copy=2&lang=en&not=3"]));
}

#[test]
fn text_that_only_looks_like_links_is_not_followed() {
    let server = Server::start(
        r#"{"/": ("<head><title><a href=/title></title><style>a[href='/style'] {}</style>"
                  "<script>document.write(\"<a href='/script'>\"); if (a<b) {}</script>"
                  "<script><!-- <script> </script> <a href=/script-escaped> --></script>"
                  "</head><body><!-- <a href=/comment> --><!--> <a href=/after-abrupt>"
                  "<textarea><a href=/textarea></textarea><xmp><a href=/xmp></xmp>"
                  "<noembed><a href=/noembed></noembed>&lt;a href=/text&gt;"
                  "<![CDATA[<a href=/cdata>]]><a href=/ok></body>")}"#,
    );
    let r = crawl(&server, &[]);
    // `<!-->` closes an (empty) comment: the link after it is a link.
    assert_eq!(r.paths(), strs(&["/", "/after-abrupt", "/ok"]));
}

#[test]
fn noframes_content_is_not_followed() {
    let server = Server::start(r#"{"/": "<noframes><a href=/noframes></noframes><a href=/ok>"}"#);
    let r = crawl(&server, &[]);
    assert_eq!(r.paths(), strs(&["/", "/ok"]));
}

#[test]
fn one_page_under_several_spellings_is_fetched_once() {
    let server = Server::start(
        r#"{"/": page(["/~a", "/%7Ea", "/%7ea", "http://127.0.0.1:%d/~a" % PORT, "/x/", "/x/.", "/x/./",
                       "/x/y/..", "http://127.0.0.1:%d/x/#f" % PORT, "/caf\u00e9", "/caf%c3%a9", "/caf%C3%A9",
                       "/a%2fb", "/a%2Fb", "/%41", "/A"])}"#,
    );
    let r = crawl(&server, &[]);
    assert_eq!(
        r.paths(),
        strs(&["/", "/~a", "/x/", "/caf%C3%A9", "/a%2Fb", "/A"]),
        "{:?}",
        r.lines
    );
    assert!(
        server.pages().values().all(|&n| n == 1),
        "{:?}",
        server.pages()
    );
}

#[test]
fn non_ascii_paths_and_queries_are_utf8_percent_encoded() {
    let server = Server::start(r#"{"/": "<a href='/ünï/ö?q=é&r=%C3%A9'>x</a>"}"#);
    let r = crawl(&server, &[]);
    let want = "/%C3%BCn%C3%AF/%C3%B6?q=%C3%A9&r=%C3%A9";
    assert_eq!(r.paths(), strs(&["/", want]));
    assert_eq!(server.pages().get(want), Some(&1));
}

// Fixed: the crawler decodes a page in the encoding its Content-Type,
// byte order mark or <meta> declares.
#[test]
fn latin1_page_links_are_decoded_with_its_charset() {
    // A browser reads `caf\xe9` in an ISO-8859-1 page as "café" and asks
    // for /caf%C3%A9 (paths are always UTF-8 in URLs).
    let server = Server::start(
        r#"{"/": R(b"<a href='/caf\xe9'>x</a>", ctype="text/html; charset=iso-8859-1")}"#,
    );
    let r = crawl(&server, &[]);
    assert_eq!(r.paths(), strs(&["/", "/caf%C3%A9"]), "{:?}", r.lines);
}

#[test]
fn html_content_types_are_parsed_and_others_are_not() {
    let server = Server::start(
        r#"{"/": page(["/pdf", "/plain", "/png", "/charset", "/upper", "/xhtml", "/none"]),
            "/pdf": R("%PDF-1.4 <a href=/from-pdf>", ctype="application/pdf"),
            "/plain": R("<a href=/from-plain>", ctype="text/plain"),
            "/png": R("<a href=/from-png>", ctype="image/png"),
            "/charset": R("<a href=/from-charset>", ctype="text/html; charset=UTF-8"),
            "/upper": R("<a href=/from-upper>", ctype="TEXT/HTML"),
            "/xhtml": R("<?xml version='1.0'?><!DOCTYPE html><html xmlns='http://www.w3.org/1999/xhtml'>"
                        "<body><a href='/from-xhtml'/></body></html>", ctype="application/xhtml+xml"),
            "/none": R("<a href=/from-none>", ctype=None)}"#,
    );
    let r = crawl(&server, &[]);
    let by = r.by_path();
    for p in ["/pdf", "/plain", "/png"] {
        assert_eq!(by[p]["links"], 0, "{p}");
    }
    for p in ["/charset", "/upper", "/xhtml"] {
        assert_eq!(by[p]["links"], 1, "{p}");
    }
    let fetched = r.paths();
    for p in ["/from-pdf", "/from-plain", "/from-png"] {
        assert!(!fetched.contains(&p.to_owned()), "{p}");
    }
    for p in ["/from-charset", "/from-upper", "/from-xhtml"] {
        assert!(fetched.contains(&p.to_owned()), "{p}");
    }
}

#[test]
fn gzip_pages_are_decoded_and_their_links_followed() {
    let body = format!("<a href=/gz-child>x</a>{}", " ".repeat(5000));
    let server = Server::start(&format!(
        r#"{{"/": R("{body}", gz=True), "/gz-child": R(page(["/gz-grandchild"]), gz=True)}}"#
    ));
    let r = crawl(&server, &[]);
    let by = r.by_path();
    assert_eq!(by["/"]["bytes"], body.len());
    assert!(by["/"]["error"].is_null());
    assert_eq!(r.paths(), strs(&["/", "/gz-child", "/gz-grandchild"]));
}

#[test]
fn body_limit_is_exact() {
    let server = Server::start(
        r#"{"/": page(["/exact", "/over", "/gz-over"]),
            "/exact": "<a href=/e>" + "x" * (2000 - 11),
            "/over": "<a href=/o>" + "x" * (2001 - 11),
            "/gz-over": R("<a href=/g>" + "x" * (2001 - 11), gz=True)}"#,
    );
    let r = crawl(&server, &["--max-body", "2000"]);
    let by = r.by_path();
    assert!(by["/exact"]["error"].is_null(), "{:?}", by["/exact"]);
    assert_eq!(by["/exact"]["bytes"], 2000);
    assert_eq!(by["/over"]["error"], "too_large");
    assert_eq!(by["/gz-over"]["error"], "too_large");
    assert!(by.contains_key("/e"));
    assert!(!by.contains_key("/o") && !by.contains_key("/g"));
}

#[test]
fn a_page_near_the_default_body_limit_is_parsed() {
    // 4 MiB - 1 of page, the last link at the very end.
    let server = Server::start(
        r#"{"/": (lambda n: ("<a href=/a>" * 1000).ljust(n - 12) + "<a href=/z>x")(4 * 1024 * 1024 - 1)}"#,
    );
    let r = crawl(&server, &[]);
    let by = r.by_path();
    assert!(by["/"]["error"].is_null(), "{:?}", by["/"]);
    assert_eq!(by["/"]["bytes"], (4 << 20) - 1);
    assert!(
        by.contains_key("/a") && by.contains_key("/z"),
        "{:?}",
        r.lines
    );
    assert_eq!(server.pages().get("/a"), Some(&1));
}

#[test]
fn max_pages_is_exact_and_bounded_with_ten_thousand_links() {
    let server = Server::start(r#"{"/": page(["/g/%d" % i for i in range(10000)] * 2)}"#);
    let start = server.url("/");
    let t = Instant::now();
    let r = run(
        &[&start, "-c", "8", "--retries", "0", "--max-pages", "50"],
        BOUND,
    );
    assert!(r.status.is_some_and(|s| s.success()), "{}", r.stderr);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(r.lines.len(), 50);
    assert_eq!(r.by_path().len(), 50);
    assert_eq!(r.by_path()["/"]["links"], 20000);
    assert!(r.stderr.contains("crawled 50 pages"), "{}", r.stderr);
    let pages = server.pages();
    assert_eq!(pages.values().sum::<u64>(), 50, "{pages:?}");
}

#[test]
fn max_depth_is_exact() {
    let server = Server::start(
        r#"{"/": page(["/d1"]), "/d1": page(["/d2"]), "/d2": page(["/d3"]), "/d3": page(["/d4"])}"#,
    );
    let r = crawl(&server, &["--max-depth", "2"]);
    assert_eq!(r.paths(), strs(&["/", "/d1", "/d2"]));
    let r = crawl(&server, &["--max-depth", "0"]);
    assert_eq!(r.paths(), strs(&["/"]));
}

#[test]
fn max_depth_counts_the_shortest_path() {
    // /x is at depth 2 (/ -> /slow -> /x), /y at depth 3. The fast path
    // / -> /b -> /c -> /x reaches /x first, at depth 3.
    let server = Server::start(
        r#"{"/": page(["/slow", "/b"]), "/slow": R(page(["/x"]), sleep=1.0),
            "/b": page(["/c"]), "/c": page(["/x"]), "/x": page(["/y"])}"#,
    );
    let r = crawl(&server, &["-c", "4", "--max-depth", "3"]);
    assert!(r.by_path().contains_key("/y"), "{:?}", r.paths());
}

#[test]
fn a_shorter_path_found_late_reaches_pages_two_links_further() {
    // Shortest depths: /m 2 (via /slow), /n 3, /o 4, /p 5. The fast path
    // / -> /a -> /b -> /m finds /m at 3, /n at 4, and drops /o (5) before
    // /slow answers: its answer must shorten /n's links too.
    let server = Server::start(
        r#"{"/": page(["/slow", "/a"]), "/slow": R(page(["/m"]), sleep=1.0),
            "/a": page(["/b"]), "/b": page(["/m"]), "/m": page(["/n"]),
            "/n": page(["/o"]), "/o": page(["/p"])}"#,
    );
    let r = crawl(&server, &["-c", "4", "--max-depth", "4"]);
    assert_eq!(
        r.paths(),
        strs(&["/", "/slow", "/a", "/b", "/m", "/n", "/o"]),
        "{:?}",
        r.lines
    );
    assert!(
        server.pages().values().all(|&n| n == 1),
        "{:?}",
        server.pages()
    );
}

#[test]
fn a_shorter_path_to_a_redirect_shortens_its_target() {
    // /r redirects to /t, which keeps /r's depth: 2 by the shortest path
    // (via /slow), so /u is at 3 and /v at 4. The fast path reaches /r at 3.
    let server = Server::start(
        r#"{"/": page(["/slow", "/a"]), "/slow": R(page(["/r"]), sleep=1.0),
            "/a": page(["/b"]), "/b": page(["/r"]),
            "/r": R("", "302 Found", headers=[("Location", "/t")]),
            "/t": page(["/u"]), "/u": page(["/v"])}"#,
    );
    let r = crawl(&server, &["-c", "4", "--max-depth", "3"]);
    assert_eq!(
        r.paths(),
        strs(&["/", "/slow", "/a", "/b", "/r", "/t", "/u"]),
        "{:?}",
        r.lines
    );
    assert!(
        server.pages().values().all(|&n| n == 1),
        "{:?}",
        server.pages()
    );
}

#[test]
fn many_duplicate_links_fetch_once() {
    let server = Server::start(
        r#"{"/": page(["/dup", "/dup#a", "./dup", "/dup?"[:-1]] * 3000), "/dup": page(["/"] * 3000)}"#,
    );
    let r = crawl(&server, &["-c", "8"]);
    assert_eq!(r.paths(), strs(&["/", "/dup"]));
    assert_eq!(server.pages().get("/dup"), Some(&1));
    assert_eq!(server.pages().get("/"), Some(&1));
}

#[test]
fn scope_is_the_start_host_and_all_hosts_widens_it() {
    let other = Server::start(r#"{"/other-port": page(["/other-child"])}"#);
    let server = Server::start_with(
        r#"{"/": page(["http://localhost:%d/via-localhost" % PORT, "http://127.0.0.1:%d/other-port" % OTHER])}"#,
        other.port,
    );
    let r = crawl(&server, &[]);
    // Another port of the same host is in scope: --help speaks of hosts.
    assert_eq!(r.paths(), strs(&["/", "/other-port", "/other-child"]));
    let r = crawl(&server, &["--all-hosts"]);
    let urls: Vec<&str> = r.lines.iter().map(|l| l["url"].as_str().unwrap()).collect();
    assert!(
        urls.contains(&format!("http://localhost:{}/via-localhost", server.port).as_str()),
        "{urls:?}"
    );
}

#[test]
fn odd_characters_in_urls_and_messages_are_valid_json() {
    let server = Server::start(
        r#"{"/": ("<a href='/q\"uote'>1</a><a href='/back\\slash'>2</a><a href='/ctl&#1;&#x7f;x'>3</a>"
                  "<a href='/sp ace?x=\"y\"&z=<>'>4</a><a href='/emoji\U0001F600'>5</a><a href='/r1'>6</a>"
                  "<a href='/r2'>7</a><a href='/%s'>8</a>" % ("L" * 8000)),
            "/r1": R("", "302 Found", headers=[("Location", b"/t\xff\"\\ <x>\t")]),
            "/r2": R("", "301 Moved", headers=[("Location", "http://[::1")])}"#,
    );
    let r = crawl(&server, &[]);
    // `run` parsed every line; URLs are ASCII, once each.
    let by = r.by_path();
    for l in &r.lines {
        assert!(l["url"].as_str().unwrap().is_ascii(), "{l}");
    }
    assert!(by.contains_key(&format!("/{}", "L".repeat(8000))));
    assert!(by["/r1"]["redirect"].as_str().is_some(), "{:?}", by["/r1"]);
    assert_eq!(by["/r2"]["error"], "redirect", "{:?}", by["/r2"]);
    assert_eq!(by.len(), r.lines.len());
    // The summary counts the errors of the lines.
    let errors = r.lines.iter().filter(|l| !l["error"].is_null()).count();
    assert!(
        r.stderr.contains(&format!("errors: {errors} (")),
        "{errors}: {}",
        r.stderr
    );
}

#[test]
fn output_in_a_missing_directory_is_a_clear_error_before_fetching() {
    let server = Server::start("{}");
    let start = server.url("/");
    let out = std::env::temp_dir()
        .join(format!("sylvan-p11-missing-{}", std::process::id()))
        .join("sub")
        .join("out.jsonl");
    let r = run(&[&start, "-o", out.to_str().unwrap()], BOUND);
    let status = r.status.expect("ends");
    assert_eq!(status.code(), Some(1), "{}", r.stderr);
    assert!(r.stderr.contains(out.to_str().unwrap()), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert!(server.log().is_empty(), "{:?}", server.log());
}

#[test]
fn rel_nofollow_links_are_followed() {
    // Not promised either way by --help or the README: documented here.
    let server = Server::start(r#"{"/": "<a rel=nofollow href=/nf>x</a>"}"#);
    let r = crawl(&server, &[]);
    assert_eq!(r.paths(), strs(&["/", "/nf"]));
}

#[test]
fn template_svg_and_noscript_contents() {
    // As the code does it (not promised anywhere): <template> and <svg>
    // links are followed; <noscript> is raw text, as with scripting on.
    let server = Server::start(
        r#"{"/": "<template><a href=/tpl></template><noscript><a href=/ns></noscript><svg><a href=/svg></a></svg>"}"#,
    );
    let r = crawl(&server, &[]);
    assert_eq!(r.paths(), strs(&["/", "/svg", "/tpl"]));
}

// Fixed: the link extractor keeps track of SVG and MathML (foreign
// content), where CDATA sections hide markup.
#[test]
fn svg_cdata_text_is_not_followed() {
    let server = Server::start(
        r#"{"/": "<svg><![CDATA[ if (a > b) { s = '<a href=/cdata>'; } ]]></svg><a href=/ok>"}"#,
    );
    let r = crawl(&server, &[]);
    assert_eq!(r.paths(), strs(&["/", "/ok"]));
}

#[test]
fn broken_gzip_is_a_typed_error() {
    let server = Server::start(
        r#"{"/": page(["/badgz", "/after"]),
            "/badgz": R("<a href=/x>not gzip at all", headers=[("Content-Encoding", "gzip")])}"#,
    );
    let r = crawl(&server, &[]);
    let by = r.by_path();
    assert!(by["/badgz"]["error"].is_string(), "{:?}", by["/badgz"]);
    assert_ne!(by["/badgz"]["error"], "panic");
    assert!(by.contains_key("/after") && !by.contains_key("/x"));
}

#[test]
fn redirects_to_another_host_are_shown_but_not_followed() {
    let server = Server::start(
        r#"{"/": page(["/away", "/same"]),
            "/away": R("", "302 Found", headers=[("Location", "http://localhost:%d/there" % PORT)]),
            "/same": R("", "301 Moved", headers=[("Location", "HTTP://127.0.0.1:%d/./here#x" % PORT)])}"#,
    );
    let r = crawl(&server, &[]);
    let by = r.by_path();
    assert_eq!(
        by["/away"]["redirect"],
        format!("http://localhost:{}/there", server.port)
    );
    assert_eq!(by["/same"]["redirect"], server.url("/here"));
    assert_eq!(r.paths(), strs(&["/", "/away", "/same", "/here"]));
    assert!(!server.pages().contains_key("/there"));
}

#[test]
fn meta_refresh_is_not_followed() {
    // Not promised either way: documented here.
    let server = Server::start(r#"{"/": "<meta http-equiv=refresh content='0; url=/refreshed'>"}"#);
    let r = crawl(&server, &[]);
    assert_eq!(r.paths(), strs(&["/"]));
}

#[test]
fn an_unreachable_start_url_still_exits_zero() {
    // Documented: a crawl whose every page failed is still a complete crawl.
    let port = crate::util::spare_port();
    let start = format!("http://127.0.0.1:{port}/");
    let r = run(&[&start, "--retries", "0", "--timeout", "2"], BOUND);
    assert!(r.status.is_some_and(|s| s.success()), "{}", r.stderr);
    assert_eq!(r.lines.len(), 1);
    assert_eq!(r.lines[0]["error"], "robots", "{:?}", r.lines);
}

#[test]
fn a_utf8_location_is_the_same_page_as_its_percent_encoded_link() {
    let server = Server::start(
        r#"{"/": page(["/r", "/caf%C3%A9"]),
            "/r": R("", "302 Found", headers=[("Location", "/caf\u00e9".encode())])}"#,
    );
    let r = crawl(&server, &[]);
    assert_eq!(r.paths(), strs(&["/", "/r", "/caf%C3%A9"]), "{:?}", r.lines);
    assert_eq!(server.pages().get("/caf%C3%A9"), Some(&1));
}

#[test]
fn very_long_urls_are_fetched_or_a_typed_error() {
    let server = Server::start(r#"{"/": page(["/" + "L" * 20000, "/" + "M" * 70000, "/after"])}"#);
    let r = crawl(&server, &[]);
    let by = r.by_path();
    let long = &by[&format!("/{}", "L".repeat(20000))];
    assert!(
        long["error"].is_null(),
        "{} {}",
        long["error"],
        long["message"]
    );
    let longer = &by[&format!("/{}", "M".repeat(70000))];
    assert_ne!(longer["error"], "panic");
    assert!(by.contains_key("/after"));
}

/// Crawls a server that answers one request per connection and closes it
/// `close` seconds later, without `Connection: close`; the failed lines.
fn crawl_closing(close: &str) -> Vec<serde_json::Value> {
    let server = Server::start_env(
        r#"{"/": page(["/k/%d" % i for i in range(30)])}"#,
        &[("CLOSE_AFTER", close)],
    );
    let r = crawl(&server, &[]);
    r.lines
        .into_iter()
        .filter(|l| !l["error"].is_null())
        .collect()
}

#[test]
fn requests_on_connections_the_server_closed_are_retried_at_once() {
    // Closed at once (the pooled connection looks open a moment longer),
    // or 50 ms later with the next request already sent (an idle timeout).
    for close in ["0", "0.05"] {
        let failed = crawl_closing(close);
        assert!(failed.is_empty(), "close after {close} s: {failed:?}");
    }
}

#[test]
fn output_file_gets_the_lines() {
    let server = Server::start(r#"{"/": page(["/a"])}"#);
    let dir = std::env::temp_dir().join(format!("sylvan-p11-out-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("pages.jsonl");
    let start = server.url("/");
    let r = run(&[&start, "-c", "1", "-o", out.to_str().unwrap()], BOUND);
    assert!(r.status.is_some_and(|s| s.success()), "{}", r.stderr);
    assert!(r.stderr.contains("crawled 2 pages"), "{}", r.stderr);
    let text = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(r.lines.is_empty());
    assert_eq!(text.lines().count(), 2);
    for l in text.lines() {
        let _: serde_json::Value = serde_json::from_str(l).unwrap();
    }
}

#[test]
fn max_pages_counts_redirect_hops_exactly() {
    let server = Server::start(
        r#"dict([("/", page(["/r/%d" % i for i in range(20)] + ["/t/%d" % i for i in range(20)]))] +
                [("/r/%d" % i, R("", "302 Found", headers=[("Location", "/t/%d" % i)])) for i in range(20)])"#,
    );
    for max in ["1", "2", "7", "10", "30"] {
        let r = crawl(&server, &["-c", "4", "--max-pages", max]);
        let n: usize = max.parse().unwrap();
        assert_eq!(r.by_path().len(), n, "--max-pages {max}");
    }
    let before = server.pages();
    let r = crawl(&server, &["-c", "4"]);
    assert_eq!(r.lines.len(), 41);
    let after = server.pages();
    for (p, n) in &after {
        assert_eq!(n - before.get(p).copied().unwrap_or(0), 1, "{p}");
    }
}

#[test]
fn a_start_url_with_credentials_fetches_each_page_once() {
    // Userinfo is no part of the origin: the page linked without it is the
    // same page (and the absolute link is in scope: same host).
    let server = Server::start(r#"{"/": page(["http://127.0.0.1:%d/" % PORT, "/a"])}"#);
    let start = format!("http://u:p@127.0.0.1:{}/", server.port);
    let r = run(&[&start, "-c", "1", "--retries", "0"], BOUND);
    assert!(r.status.is_some_and(|s| s.success()), "{}", r.stderr);
    let pages = server.pages();
    assert!(pages.values().all(|&n| n == 1), "{pages:?}");
}

#[test]
fn robots_rules_with_escaped_unreserved_characters_apply() {
    // RFC 9309 2.2.2: the rule /foo/bar/%62%61%7A matches /foo/bar/baz.
    let server = Server::start(
        r#"{"/robots.txt": R("User-agent: *\nDisallow: /%7Ejoe/\nDisallow: /foo/bar/%62%61%7A\n", ctype="text/plain"),
            "/": page(["/~joe/x", "/%7ejoe/y", "/foo/bar/baz", "/ok"])}"#,
    );
    let r = crawl(&server, &[]);
    let pages = server.pages();
    assert_eq!(
        pages.keys().collect::<Vec<_>>(),
        ["/", "/ok"],
        "{:?}",
        r.lines
    );
}

#[test]
fn comments_and_bogus_markup_end_where_browsers_end_them() {
    let server = Server::start(
        r#"{"/": ("<!-- x --!> <a href=/after-bang><!-- <!-- nested --> <a href=/after-nested>"
                  "<?php echo '<a href=/pi>' ?><a href=/after-pi></a href=/endtag>"
                  "<!DOCTYPE html <a href=/doctype>><a href=/after-doctype>"
                  "<a href=/ok1 <a href=/not-a-tag>")}"#,
    );
    let r = crawl(&server, &[]);
    assert_eq!(
        r.paths(),
        strs(&[
            "/",
            "/after-bang",
            "/after-nested",
            "/after-pi",
            "/after-doctype",
            "/ok1",
        ])
    );
}

#[test]
fn a_concurrent_crawl_of_a_dense_site_fetches_each_page_once() {
    let server = Server::start(
        r#"dict([("/", page(["/p/0"]))] + [("/p/%d" % i, page(["/p/%d" % ((i * 7 + k * 13) % 400) for k in range(12)]
                + ["/p/%d?x=%d#f" % (i, k) for k in range(2)] + ["/p/%d?x=%d" % (i, k) for k in range(2)]))
                for i in range(400)])"#,
    );
    let r = crawl(&server, &["-c", "64"]);
    let pages = server.pages();
    assert!(pages.values().all(|&n| n == 1), "{pages:?}");
    assert_eq!(r.by_path().len(), pages.len());
    assert!(r.lines.iter().all(|l| l["error"].is_null()));
}

#[test]
fn start_urls_in_several_spellings_are_one_page() {
    let server = Server::start(r#"{"/": page(["/%7ea"])}"#);
    let a = format!("HTTP://127.0.0.1:{}", server.port);
    let b = format!("http://127.0.0.1:{}/#top", server.port);
    let c = format!("http://127.0.0.1:{}/~a", server.port);
    let r = run(&[&a, &b, &c, "-c", "2", "--retries", "0"], BOUND);
    assert!(r.status.is_some_and(|s| s.success()), "{}", r.stderr);
    assert_eq!(r.paths(), strs(&["/", "/~a"]));
    assert!(server.pages().values().all(|&n| n == 1));
}
