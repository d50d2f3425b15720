//! Probe round 30: the crawler example against a real web server, nginx.
//!
//! Earlier crawler probes used hand-made Python servers; here each test
//! starts its own nginx (foreground, one process, a temp prefix, two
//! loopback ports from `spare_port`, stopped in a drop guard), builds a
//! static site in its `www` directory and runs the crawler binary against
//! it as a user would. What was requested is read from nginx's own access
//! log (`$server_port $request_uri $status $body_bytes_sent
//! $connection_requests $gzip_ratio $msec "$http_user_agent"`) and compared with
//! the crawler's JSON lines and summary:
//!
//! * a site with directories (nginx's 301 from `/docs` to `/docs/`),
//!   relative links with `..`, queries and fragments, `<base href>`,
//!   images and PDFs (fetched when `<a href>` links them, never parsed;
//!   `<img src>` is no link), spellings that differ in case or
//!   percent-encoding, other hosts (out of scope) and another port of the
//!   same host (in scope: the scope is the host, as `--help` says);
//! * robots.txt from nginx: groups and the crawler's product token, the
//!   `*` group for another `--user-agent`, a missing file (404), a
//!   redirected one, a redirect loop and a 503;
//! * `gzip on` (links found, `bytes` counts the decoded body) and the
//!   `--max-body` bound on decoded and plain bodies;
//! * nginx's 403, 404, `return 500`/`503` (retries with doubling backoff,
//!   `Retry-After`), `return 301`/`302` chains, a loop and a chain longer
//!   than `--max-redirects`, `limit_rate` pages against `--timeout`;
//! * `autoindex on` listings, keep-alive connections closed by
//!   `keepalive_requests 2` and `keepalive_timeout 1s`;
//! * a site of 300 pages with `-c`, `-o`, `--stats`, `--max-pages` and
//!   `--max-depth`, every JSON line and the summary's error counts checked
//!   against the access log.
//!
//! Without nginx a test says so on stderr and passes. Tests marked `BUG`
//! show a defect and fail without their `ignore`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::crawler2::{Run, run};
use crate::util;

/// The crawler's default user agent.
const UA: &str = "sylvan-crawler/0.1";

// ---------------------------------------------------------------- nginx

/// p30's [`util::Nginx`]: serving `www` on two ports, with an access log
/// of [`Hit`]s; the site is written after the start.
struct Nginx(util::Nginx);

impl std::ops::Deref for Nginx {
    type Target = util::Nginx;
    fn deref(&self) -> &util::Nginx {
        &self.0
    }
}

/// One access-log line.
#[derive(Debug, Clone)]
struct Hit {
    port: u16,
    uri: String,
    status: u16,
    sent: u64,
    conn_requests: u32,
    gzip_ratio: String,
    /// When nginx logged it, in seconds.
    msec: f64,
    ua: String,
}

/// The `http` block (after the common frame of [`util::Nginx`]).
const HTTP: &str = r#"log_format p30 '$server_port $request_uri $status $body_bytes_sent $connection_requests $gzip_ratio $msec "$http_user_agent"';
  access_log {DIR}/access.log p30;
  types { text/html html; image/png png; application/pdf pdf; text/plain txt; text/css css; application/javascript js; }
  default_type application/octet-stream;"#;

impl Nginx {
    /// Starts nginx with `server_extra` in its `server` block (`{P}` there
    /// is replaced by the first port); `None` (and a line saying so)
    /// without nginx.
    fn start(tag: &str, server_extra: &str) -> Option<Nginx> {
        let conf = util::NginxConf {
            worker_connections: 256,
            ports: 2,
            http: HTTP,
            server: server_extra,
        };
        util::Nginx::start(&format!("p30-{tag}"), &conf, |_| {}).map(Nginx)
    }

    fn port2(&self) -> u16 {
        self.ports()[1]
    }

    fn url2(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port2())
    }

    /// Writes `www/path`, with `{P}` and `{Q}` replaced by the two ports
    /// (nginx reads files per request: a site may be written after start).
    fn write(&self, path: &str, body: &str) {
        let body = body
            .replace("{P}", &self.port().to_string())
            .replace("{Q}", &self.port2().to_string());
        self.write_bytes(path, body.as_bytes());
    }

    fn write_bytes(&self, path: &str, body: &[u8]) {
        let p = self.dir().join("www").join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }

    fn log_len(&self) -> usize {
        std::fs::read_to_string(self.dir().join("access.log")).map_or(0, |s| s.len())
    }

    /// The access log from byte `from` once it stopped growing for 150 ms
    /// (at most 3 s), without the start-up probes.
    fn hits_from(&self, from: usize) -> Vec<Hit> {
        let t = Instant::now();
        let mut last = (self.log_len(), Instant::now());
        while t.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(30));
            let n = self.log_len();
            if n != last.0 {
                last = (n, Instant::now());
            } else if last.1.elapsed() >= Duration::from_millis(150) {
                break;
            }
        }
        let text = std::fs::read_to_string(self.dir().join("access.log")).unwrap_or_default();
        text[from.min(text.len())..]
            .lines()
            .map(|l| {
                let (fields, ua) = l.split_once(" \"").unwrap_or((l, "\""));
                let f: Vec<&str> = fields.split_whitespace().collect();
                assert_eq!(f.len(), 7, "odd log line {l:?}");
                Hit {
                    port: f[0].parse().unwrap(),
                    uri: f[1].to_owned(),
                    status: f[2].parse().unwrap(),
                    sent: f[3].parse().unwrap(),
                    conn_requests: f[4].parse().unwrap(),
                    gzip_ratio: f[5].to_owned(),
                    msec: f[6].parse().unwrap(),
                    ua: ua.trim_end_matches('"').to_owned(),
                }
            })
            .filter(|h| h.uri != "/__probe")
            .collect()
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits_from(0)
    }

    /// Waits (at most `max`) until `uri` was logged `n` times on the
    /// first port (requests that the client abandoned are logged when
    /// nginx notices).
    fn wait_logged(&self, uri: &str, n: usize, max: Duration) {
        let t = Instant::now();
        while t.elapsed() < max {
            let c = std::fs::read_to_string(self.dir().join("access.log"))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.split_whitespace().nth(1) == Some(uri))
                .count();
            if c >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(30));
        }
    }
}

/// Requests by URI on `port`.
fn counts(hits: &[Hit], port: u16) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for h in hits.iter().filter(|h| h.port == port) {
        *m.entry(h.uri.clone()).or_default() += 1;
    }
    m
}

/// Each of `uris` once.
fn once(uris: &[&str]) -> BTreeMap<String, usize> {
    uris.iter().map(|u| ((*u).to_owned(), 1)).collect()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

// ---------------------------------------------------------------- running the crawler

const BOUND: Duration = Duration::from_secs(15);

/// Crawls from `start` with `extra` options; the crawl must end well.
fn crawl(start: &str, extra: &[&str]) -> Run {
    let mut args = vec![start];
    if !extra.contains(&"--timeout") {
        args.extend(["--timeout", "3"]);
    }
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

/// The lines by full URL (each URL must occur once).
fn by_url(r: &Run) -> BTreeMap<String, &Value> {
    let mut m = BTreeMap::new();
    for l in &r.lines {
        let u = l["url"].as_str().unwrap().to_owned();
        assert!(m.insert(u.clone(), l).is_none(), "{u} reported twice");
    }
    m
}

/// The error kind of each line that has one, by path.
fn errors_by_path(r: &Run) -> BTreeMap<String, String> {
    r.by_path()
        .into_iter()
        .filter_map(|(p, l)| l["error"].as_str().map(|e| (p, e.to_owned())))
        .collect()
}

/// Error counts by kind from the lines.
fn error_kinds(r: &Run) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for l in &r.lines {
        if let Some(e) = l["error"].as_str() {
            *m.entry(e.to_owned()).or_default() += 1;
        }
    }
    m
}

/// `<a href>` to each of `links`, in an HTML page.
fn page(links: &[&str]) -> String {
    let mut s = String::from("<!doctype html><html><head><title>t</title></head><body>\n");
    for l in links {
        s.push_str(&format!("<a href=\"{l}\">{l}</a>\n"));
    }
    s.push_str("</body></html>\n");
    s
}

// ---------------------------------------------------------------- a site with directories

/// The site of the first test: directories, `..`, queries, fragments,
/// `<base href>`, files that are not HTML, several spellings of a page,
/// another host and another port.
fn write_docs_site(ng: &Nginx) {
    ng.write(
        "index.html",
        r#"<!doctype html><html><head><title>home</title>
<link rel="stylesheet" href="/style.css"><script src="/app.js"></script></head><body>
<a href="docs">docs without its slash</a>
<a href="docs/">docs</a>
<a href="./docs/guide/intro.html#top">intro</a>
<a href="/docs/guide/../guide/intro%2Ehtml">intro, spelled otherwise</a>
<a href="search?q=a&amp;b=1">search</a>
<a href="search?q=a&b=1#results">search with a fragment</a>
<a href="img/logo.png">logo</a> <img src="img/inline.png" alt="inline">
<a href="files/manual.pdf">manual</a>
<a href="/~user/">user</a> <a href="/%7euser/">user</a> <a href="/%7Euser/">user</a>
<a href="HTTP://127.0.0.1:{P}/about.html">about, upper-case scheme</a>
<a href="/Docs/">upper-case path: another page</a>
<a href="http://localhost:{P}/elsewhere.html">another host</a>
<a href="http://127.0.0.1:{Q}/port2.html">another port</a>
<a href="mailto:a@example.com">mail</a> <a href="javascript:void(0)">js</a>
</body></html>
"#,
    );
    ng.write(
        "docs/index.html",
        &page(&["guide/intro.html", "../about.html"]),
    );
    ng.write(
        "docs/guide/intro.html",
        r#"<html><head><base href="/docs/ref/"></head><body>
<a href="api.html">api</a> <a href="../../about.html">about</a>
<a href="../guide/intro.html">itself</a></body></html>
"#,
    );
    ng.write("docs/ref/api.html", &page(&["?page=2", "#top"]));
    ng.write(
        "about.html",
        &page(&["/search?q=%61&b=1", "/search?b=1&q=a", "/docs/"]),
    );
    ng.write("search", &page(&["/"]));
    ng.write("~user/index.html", &page(&["../about.html"]));
    ng.write("port2.html", &page(&["/port2-child.html"]));
    ng.write("port2-child.html", &page(&[]));
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(b"<a href=\"/from-png.html\">not a link</a>");
    png.extend((0..1000u32).map(|i| (i * 7) as u8));
    ng.write_bytes("img/logo.png", &png);
    ng.write_bytes("img/inline.png", &png);
    ng.write(
        "files/manual.pdf",
        "%PDF-1.4\n<a href=\"/from-pdf.html\">not a link</a>\n%%EOF\n",
    );
    for f in [
        "style.css",
        "app.js",
        "from-png.html",
        "from-pdf.html",
        "elsewhere.html",
    ] {
        ng.write(f, &page(&[]));
    }
}

/// Every page of a static site with directories is fetched exactly once
/// whatever spelling links use: `/docs` is nginx's 301 to `/docs/`,
/// `intro%2Ehtml` and `..` resolve to the page they name, a fragment is
/// dropped and `&amp;` decoded, `<base href>` moves relative links, `?page=2`
/// is a page of its own, `/~user/` is one page in three spellings, and a
/// query in another order is another page (nginx serves the same file, but
/// URLs differ). The PNG and the PDF that `<a href>` links are fetched (the
/// crawler goes by Content-Type, not by extension) and not parsed;
/// `<img>`, `<link>` and `<script>` are no links. `/Docs/` is another page
/// (nginx's paths are case-sensitive: 404). `localhost` is another host
/// (not fetched); another port of the same host is in scope and has its
/// own robots.txt. nginx's access log shows the same requests, robots.txt
/// (404: allow all) once per origin.
#[test]
fn nginx_site_with_directories_is_fetched_once_per_page() {
    let Some(ng) = Nginx::start("docs", "location = /search { default_type text/html; }") else {
        return;
    };
    write_docs_site(&ng);
    let r = crawl(&ng.url("/"), &["-c", "4"]);
    let lines = by_url(&r);
    let p = |s: &str| ng.url(s);
    let q = |s: &str| ng.url2(s);
    let expected: BTreeSet<String> = [
        p("/"),
        p("/docs"),
        p("/docs/"),
        p("/docs/guide/intro.html"),
        p("/docs/ref/api.html"),
        p("/docs/ref/api.html?page=2"),
        p("/search?q=a&b=1"),
        p("/search?b=1&q=a"),
        p("/img/logo.png"),
        p("/files/manual.pdf"),
        p("/~user/"),
        p("/about.html"),
        p("/Docs/"),
        q("/port2.html"),
        q("/port2-child.html"),
    ]
    .into_iter()
    .collect();
    let got: BTreeSet<String> = lines.keys().cloned().collect();
    assert_eq!(got, expected, "{}", r.stderr);

    let docs = lines[&p("/docs")];
    assert_eq!(docs["status"], 301);
    assert_eq!(docs["redirect"], p("/docs/").as_str());
    assert!(docs["error"].is_null());
    let slash = lines[&p("/docs/")];
    assert_eq!(slash["status"], 200);
    assert_eq!(slash["links"], 2);
    let upper = lines[&p("/Docs/")];
    assert_eq!(upper["status"], 404);
    assert_eq!(upper["error"], "status");
    let png = lines[&p("/img/logo.png")];
    assert_eq!(png["status"], 200);
    assert_eq!(png["links"], 0);
    let png_len = std::fs::metadata(ng.dir().join("www/img/logo.png"))
        .unwrap()
        .len();
    assert_eq!(png["bytes"], png_len);
    let pdf = lines[&p("/files/manual.pdf")];
    assert_eq!(pdf["status"], 200);
    assert_eq!(pdf["links"], 0);
    for (u, l) in &lines {
        if u != &p("/Docs/") {
            assert!(l["error"].is_null(), "{u}: {l}");
        }
    }
    assert!(r.stderr.contains("errors: 1 (status 1)"), "{}", r.stderr);

    let hits = ng.hits();
    assert_eq!(
        counts(&hits, ng.port()),
        once(&[
            "/",
            "/docs",
            "/docs/",
            "/docs/guide/intro.html",
            "/docs/ref/api.html",
            "/docs/ref/api.html?page=2",
            "/search?q=a&b=1",
            "/search?b=1&q=a",
            "/img/logo.png",
            "/files/manual.pdf",
            "/~user/",
            "/about.html",
            "/Docs/",
            "/robots.txt",
        ])
    );
    assert_eq!(
        counts(&hits, ng.port2()),
        once(&["/port2.html", "/port2-child.html", "/robots.txt"])
    );
    for h in &hits {
        assert_eq!(h.ua, UA, "{h:?}");
        if h.uri == "/robots.txt" {
            assert_eq!(h.status, 404, "{h:?}");
        }
    }
}

// ---------------------------------------------------------------- robots.txt

const ROBOTS: &str = "# robots.txt for the probe\n\
User-agent: googlebot\n\
Disallow: /\n\
\n\
User-agent: Sylvan-Crawler\n\
Disallow: /private/\n\
Allow: /private/open.html\n\
Disallow: /*.pdf$\n\
\n\
User-agent: *\n\
Disallow: /star-only/\n";

/// robots.txt served by nginx (text/plain): the crawler's group is chosen
/// by its product token without regard to case, `Allow` beats a shorter
/// `Disallow`, `$` anchors (`/doc.pdf?x=1` is allowed), and the `*` group's
/// rule does not apply to it. Another `--user-agent` gets the `*` group
/// (and is what nginx logs). Disallowed pages are `robots` lines and never
/// reach nginx; robots.txt is fetched once.
#[test]
fn nginx_robots_txt_groups_by_product_token() {
    let Some(ng) = Nginx::start("robots", "") else {
        return;
    };
    ng.write("robots.txt", ROBOTS);
    ng.write(
        "index.html",
        &page(&[
            "/private/a.html",
            "/private/open.html",
            "/doc.pdf",
            "/doc.pdf?x=1",
            "/star-only/x.html",
            "/ok.html",
        ]),
    );
    for f in [
        "private/a.html",
        "private/open.html",
        "star-only/x.html",
        "ok.html",
    ] {
        ng.write(f, &page(&[]));
    }
    ng.write("doc.pdf", "%PDF-1.4\n%%EOF\n");

    let r = crawl(&ng.url("/"), &["-c", "2"]);
    assert_eq!(
        r.paths(),
        strs(&[
            "/",
            "/doc.pdf",
            "/doc.pdf?x=1",
            "/ok.html",
            "/private/a.html",
            "/private/open.html",
            "/star-only/x.html",
        ])
    );
    let want: BTreeMap<String, String> = [("/doc.pdf", "robots"), ("/private/a.html", "robots")]
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    assert_eq!(errors_by_path(&r), want);
    let hits = ng.hits();
    assert_eq!(
        counts(&hits, ng.port()),
        once(&[
            "/",
            "/robots.txt",
            "/doc.pdf?x=1",
            "/ok.html",
            "/private/open.html",
            "/star-only/x.html",
        ])
    );
    assert!(hits.iter().all(|h| h.ua == UA), "{hits:?}");

    let from = ng.log_len();
    let other = "OtherBot/2.0 (+http://example.com/bot)";
    let r = crawl(&ng.url("/"), &["-c", "2", "--user-agent", other]);
    let want: BTreeMap<String, String> = [("/star-only/x.html".to_owned(), "robots".to_owned())]
        .into_iter()
        .collect();
    assert_eq!(errors_by_path(&r), want);
    let hits = ng.hits_from(from);
    assert_eq!(
        counts(&hits, ng.port()),
        once(&[
            "/",
            "/robots.txt",
            "/doc.pdf",
            "/doc.pdf?x=1",
            "/ok.html",
            "/private/a.html",
            "/private/open.html",
        ])
    );
    assert!(hits.iter().all(|h| h.ua == other), "{hits:?}");
}

/// A robots.txt that nginx redirects (`return 301` to another path) is
/// followed and its rules applied; the redirect is requested once.
#[test]
fn nginx_robots_txt_behind_a_redirect_is_followed() {
    let Some(ng) = Nginx::start(
        "robots-redirect",
        "location = /robots.txt { return 301 /conf/robots-real.txt; }",
    ) else {
        return;
    };
    ng.write(
        "conf/robots-real.txt",
        "User-agent: *\nDisallow: /secret/\n",
    );
    ng.write("index.html", &page(&["/secret/x.html", "/public.html"]));
    ng.write("secret/x.html", &page(&[]));
    ng.write("public.html", &page(&[]));
    let r = crawl(&ng.url("/"), &["-c", "2"]);
    assert_eq!(r.paths(), strs(&["/", "/public.html", "/secret/x.html"]));
    assert_eq!(r.by_path()["/secret/x.html"]["error"], "robots");
    let hits = ng.hits();
    assert_eq!(
        counts(&hits, ng.port()),
        once(&["/", "/robots.txt", "/conf/robots-real.txt", "/public.html"])
    );
    assert_eq!(
        hits.iter()
            .find(|h| h.uri == "/robots.txt")
            .map(|h| h.status),
        Some(301)
    );
}

/// A robots.txt that cannot be had: nginx's `return 503` is retried as a
/// page is (`--retries` 2: three requests) and then disallows everything
/// (RFC 9309: unreachable); a redirect loop is given up after ureq's five
/// hops and also disallows everything (RFC 9309 allows either reading;
/// the README lists only 4xx as "allow"). Either way only robots.txt
/// reaches nginx and the start page is a `robots` line.
#[test]
fn nginx_robots_txt_503_and_redirect_loop_disallow_everything() {
    for (tag, conf, requests) in [
        ("robots-503", "location = /robots.txt { return 503; }", 3),
        (
            "robots-loop",
            "location = /robots.txt { return 302 /robots2.txt; }\n    \
             location = /robots2.txt { return 302 /robots.txt; }",
            0,
        ),
    ] {
        let Some(ng) = Nginx::start(tag, conf) else {
            return;
        };
        ng.write("index.html", &page(&["/a.html"]));
        ng.write("a.html", &page(&[]));
        let r = crawl(&ng.url("/"), &["-c", "2", "--backoff-ms", "50"]);
        assert_eq!(r.paths(), strs(&["/"]), "{tag}");
        assert_eq!(r.by_path()["/"]["error"], "robots", "{tag}");
        let c = counts(&ng.hits(), ng.port());
        assert!(
            c.keys().all(|u| u.starts_with("/robots")),
            "{tag}: only robots.txt is requested: {c:?}"
        );
        if requests > 0 {
            assert_eq!(c["/robots.txt"], requests, "{tag}: {c:?}");
        } else {
            // 1 + 5 hops, alternating.
            let n: usize = c.values().sum();
            assert!((5..=7).contains(&n), "{tag}: {c:?}");
        }
    }
}

// ---------------------------------------------------------------- gzip and the body bound

/// `gzip on`: nginx compresses the pages (its log shows a ratio and fewer
/// bytes sent), the crawler decodes them, finds the links at the end of a
/// 60 KB page, and `bytes` is the decoded size (`--max-body` counts after
/// decompression, as `--help` says). A 300 KB page that compresses to a
/// few KB is over `--max-body 200000`: `too_large`, not retried; so is a
/// plain 300 KB page, while one of exactly 200000 bytes passes.
#[test]
fn nginx_gzip_pages_and_the_body_bound() {
    let Some(ng) = Nginx::start(
        "gzip",
        "gzip on; gzip_min_length 20;\n    location /raw/ { gzip off; }",
    ) else {
        return;
    };
    let filler = "<p>The quick brown fox jumps over the lazy dog.</p>\n".repeat(1200);
    let index = format!(
        "<html><body>{filler}<a href=\"/g/1.html\">1</a><a href=\"/g/2.html\">2</a>\
         <a href=\"/big.html\">big</a><a href=\"/raw/big.html\">raw big</a>\
         <a href=\"/raw/edge.html\">edge</a></body></html>"
    );
    ng.write("index.html", &index);
    ng.write("g/1.html", &page(&["/g/3.html"]));
    ng.write("g/2.html", &page(&[]));
    ng.write("g/3.html", &page(&[]));
    let big = "<p>aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa</p>\n"
        .repeat(300_000 / 68 + 1);
    ng.write("big.html", &big);
    ng.write("raw/big.html", &big);
    let mut edge = page(&["/g/2.html"]);
    edge.push_str(&" ".repeat(200_000 - edge.len()));
    ng.write("raw/edge.html", &edge);

    let r = crawl(&ng.url("/"), &["-c", "3", "--max-body", "200000"]);
    assert_eq!(
        r.paths(),
        strs(&[
            "/",
            "/big.html",
            "/g/1.html",
            "/g/2.html",
            "/g/3.html",
            "/raw/big.html",
            "/raw/edge.html",
        ])
    );
    let by = r.by_path();
    assert_eq!(by["/"]["bytes"], index.len());
    assert_eq!(by["/"]["links"], 5);
    assert_eq!(by["/raw/edge.html"]["bytes"], 200_000);
    assert!(by["/raw/edge.html"]["error"].is_null());
    let want: BTreeMap<String, String> = [
        ("/big.html".to_owned(), "too_large".to_owned()),
        ("/raw/big.html".to_owned(), "too_large".to_owned()),
    ]
    .into_iter()
    .collect();
    assert_eq!(errors_by_path(&r), want);

    let hits = ng.hits();
    let c = counts(&hits, ng.port());
    assert_eq!(
        c,
        once(&[
            "/",
            "/robots.txt",
            "/big.html",
            "/g/1.html",
            "/g/2.html",
            "/g/3.html",
            "/raw/big.html",
            "/raw/edge.html",
        ])
    );
    let root = hits.iter().find(|h| h.uri == "/").unwrap();
    assert_ne!(root.gzip_ratio, "-", "nginx compressed the page: {root:?}");
    assert!(root.sent < index.len() as u64 / 5, "{root:?}");
    let edge_hit = hits.iter().find(|h| h.uri == "/raw/edge.html").unwrap();
    assert_eq!(edge_hit.gzip_ratio, "-");
}

// ---------------------------------------------------------------- error pages and redirects

/// nginx's error answers: 403 (a directory without index, `autoindex
/// off`), 404, `return 500` and `return 503` are `status` errors with their
/// status; 5xx are retried twice (the default `--retries`) after 200 and
/// 400 ms (`--backoff-ms` doubled), so nginx logs three requests and the
/// line's time is over 600 ms; a 503 with `Retry-After: 1` waits a second
/// before each retry. `/noindex` (nginx's 301 to `/noindex/`) leads to
/// the same 403 page, fetched once. The summary and `--stats` count what
/// the lines say.
#[test]
fn nginx_error_pages_and_retries_with_backoff() {
    let Some(ng) = Nginx::start(
        "errors",
        "location = /e500 { return 500; }\n    \
         location = /e503 { return 503; }\n    \
         location = /busy { add_header Retry-After 1 always; return 503; }",
    ) else {
        return;
    };
    ng.write(
        "index.html",
        &page(&[
            "/noindex/",
            "/noindex",
            "/missing.html",
            "/e500",
            "/e503",
            "/busy",
        ]),
    );
    ng.write("noindex/readme.txt", "no index here\n");
    let stats = std::env::temp_dir().join(format!("sylvan-p30-stats-{}.json", std::process::id()));
    let r = crawl(
        &ng.url("/"),
        &["-c", "4", "--stats", stats.to_str().unwrap()],
    );
    let stats_v: Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    let _ = std::fs::remove_file(&stats);
    let by = r.by_path();
    assert_eq!(
        r.paths(),
        strs(&[
            "/",
            "/busy",
            "/e500",
            "/e503",
            "/missing.html",
            "/noindex",
            "/noindex/"
        ])
    );
    for (path, status) in [
        ("/noindex/", 403),
        ("/missing.html", 404),
        ("/e500", 500),
        ("/e503", 503),
        ("/busy", 503),
    ] {
        assert_eq!(by[path]["status"], status, "{path}");
        assert_eq!(by[path]["error"], "status", "{path}");
    }
    assert_eq!(by["/noindex"]["status"], 301);
    assert_eq!(by["/noindex"]["redirect"], ng.url("/noindex/").as_str());
    for path in ["/e500", "/e503"] {
        let ms = by[path]["elapsed_ms"].as_f64().unwrap();
        assert!((600.0..2500.0).contains(&ms), "{path}: {ms} ms");
    }
    let ms = by["/busy"]["elapsed_ms"].as_f64().unwrap();
    assert!((2000.0..4000.0).contains(&ms), "/busy: {ms} ms");

    let c = counts(&ng.hits(), ng.port());
    let mut want = once(&["/", "/robots.txt", "/noindex", "/noindex/", "/missing.html"]);
    for p in ["/e500", "/e503", "/busy"] {
        want.insert(p.to_owned(), 3);
    }
    assert_eq!(c, want);
    assert!(r.stderr.contains("errors: 5 (status 5)"), "{}", r.stderr);
    assert_eq!(stats_v["errors"], serde_json::json!({"status": 5}));
    assert_eq!(stats_v["pages"], 7);
}

/// nginx's `return 302`/`301` chains: each hop is a line with its status
/// and target, the final page fetched once; a two-page loop is a
/// `redirect` error on the hop that closes it; a chain of eight stops
/// after five hops in a row (`--max-redirects` 5: `/c0`..`/c5` requested,
/// `/c6` never); a redirect to another host is shown and not followed.
#[test]
fn nginx_redirect_chains_loops_and_the_hop_limit() {
    let mut conf = String::from(
        "location = /r1 { return 302 /r2; }\n    \
         location = /r2 { return 301 /r3; }\n    \
         location = /r3 { return 302 http://127.0.0.1:{P}/final.html; }\n    \
         location = /loop-a { return 302 /loop-b; }\n    \
         location = /loop-b { return 302 /loop-a; }\n    \
         location = /away { return 301 http://localhost:{P}/x.html; }\n",
    );
    for i in 0..8 {
        conf.push_str(&format!(
            "    location = /c{i} {{ return 302 /c{}; }}\n",
            i + 1
        ));
    }
    let Some(ng) = Nginx::start("redirects", &conf) else {
        return;
    };
    ng.write("index.html", &page(&["/r1", "/loop-a", "/c0", "/away"]));
    ng.write("final.html", &page(&[]));
    ng.write("x.html", &page(&[]));
    let r = crawl(&ng.url("/"), &["-c", "3"]);
    let by = r.by_path();
    assert_eq!(
        r.paths(),
        strs(&[
            "/",
            "/away",
            "/c0",
            "/c1",
            "/c2",
            "/c3",
            "/c4",
            "/c5",
            "/final.html",
            "/loop-a",
            "/loop-b",
            "/r1",
            "/r2",
            "/r3",
        ])
    );
    for (from, status, to) in [
        ("/r1", 302, ng.url("/r2")),
        ("/r2", 301, ng.url("/r3")),
        ("/r3", 302, ng.url("/final.html")),
        ("/loop-a", 302, ng.url("/loop-b")),
        ("/loop-b", 302, ng.url("/loop-a")),
        ("/c5", 302, ng.url("/c6")),
        (
            "/away",
            301,
            format!("http://localhost:{}/x.html", ng.port()),
        ),
    ] {
        assert_eq!(by[from]["status"], status, "{from}");
        assert_eq!(by[from]["redirect"], to.as_str(), "{from}");
    }
    let want: BTreeMap<String, String> = [("/loop-b", "redirect"), ("/c5", "redirect")]
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    assert_eq!(errors_by_path(&r), want);
    assert!(
        by["/c5"]["message"]
            .as_str()
            .unwrap()
            .contains("more than 5 redirects")
    );
    assert!(by["/final.html"]["error"].is_null());
    let c = counts(&ng.hits(), ng.port());
    assert_eq!(
        c,
        once(&[
            "/",
            "/robots.txt",
            "/away",
            "/c0",
            "/c1",
            "/c2",
            "/c3",
            "/c4",
            "/c5",
            "/final.html",
            "/loop-a",
            "/loop-b",
            "/r1",
            "/r2",
            "/r3",
        ])
    );
}

/// `limit_rate 10k`: a 5 KB page arrives within nginx's first-second
/// allowance; a 100 KB one (about nine seconds) is a `timeout` under
/// `--timeout 1.5`, retried once (`--retries 1`): nginx logs two requests,
/// each abandoned, and the crawl ends in about 3 s.
#[test]
fn nginx_limit_rate_pages_against_the_timeout() {
    let Some(ng) = Nginx::start("slow", "location /slow/ { limit_rate 10k; }") else {
        return;
    };
    ng.write("index.html", &page(&["/slow/ok.html", "/slow/big.html"]));
    let mut ok = page(&[]);
    ok.push_str(&" ".repeat(5_000 - ok.len()));
    ng.write("slow/ok.html", &ok);
    ng.write("slow/big.html", &" ".repeat(100_000));
    let t = Instant::now();
    let r = crawl(
        &ng.url("/"),
        &[
            "-c",
            "2",
            "--timeout",
            "1.5",
            "--retries",
            "1",
            "--backoff-ms",
            "100",
        ],
    );
    let took = t.elapsed();
    assert!(took < Duration::from_secs(6), "{took:?}");
    let by = r.by_path();
    assert_eq!(by["/slow/ok.html"]["status"], 200);
    assert_eq!(by["/slow/ok.html"]["bytes"], 5_000);
    assert_eq!(by["/slow/big.html"]["error"], "timeout");
    assert!(by["/slow/big.html"]["status"].is_null());
    let ms = by["/slow/big.html"]["elapsed_ms"].as_f64().unwrap();
    assert!((3000.0..4500.0).contains(&ms), "{ms} ms");
    assert!(r.stderr.contains("errors: 1 (timeout 1)"), "{}", r.stderr);
    ng.wait_logged("/slow/big.html", 2, Duration::from_secs(4));
    let c = counts(&ng.hits(), ng.port());
    let mut want = once(&["/", "/robots.txt", "/slow/ok.html"]);
    want.insert("/slow/big.html".into(), 2);
    assert_eq!(c, want);
}

// ---------------------------------------------------------------- autoindex and keep-alive

/// `autoindex on`: nginx's generated listing is HTML whose links (`../`,
/// files, `sub/`, a name with a space as `my%20file.html`) are followed;
/// each page once, matching the access log.
#[test]
fn nginx_autoindex_listings_are_crawled() {
    let Some(ng) = Nginx::start("autoindex", "location /pub/ { autoindex on; }") else {
        return;
    };
    ng.write("index.html", &page(&[]));
    ng.write("pub/a.html", &page(&["b.html"]));
    ng.write("pub/b.html", &page(&[]));
    ng.write("pub/my file.html", &page(&[]));
    ng.write("pub/sub/c.html", &page(&["../a.html"]));
    ng.write_bytes("pub/sub/img.png", b"\x89PNG\r\n\x1a\n");
    let r = crawl(&ng.url("/pub/"), &["-c", "2"]);
    assert_eq!(
        r.paths(),
        strs(&[
            "/",
            "/pub/",
            "/pub/a.html",
            "/pub/b.html",
            "/pub/my%20file.html",
            "/pub/sub/",
            "/pub/sub/c.html",
            "/pub/sub/img.png",
        ])
    );
    assert!(error_kinds(&r).is_empty(), "{}", r.stderr);
    let by = r.by_path();
    // `../`, three files and `sub/`.
    assert_eq!(by["/pub/"]["links"], 5);
    assert_eq!(
        counts(&ng.hits(), ng.port()),
        once(&[
            "/",
            "/robots.txt",
            "/pub/",
            "/pub/a.html",
            "/pub/b.html",
            "/pub/my%20file.html",
            "/pub/sub/",
            "/pub/sub/c.html",
            "/pub/sub/img.png",
        ])
    );
}

/// Keep-alive as nginx ends it: `keepalive_requests 2` (nginx says
/// `Connection: close` on each connection's second answer) and
/// `keepalive_timeout 1s` (idle connections closed while a slow page
/// holds the crawl for about two seconds; its links are then fetched on
/// connections the pool kept). Nothing fails, each page is requested once,
/// no connection carries more than two requests.
#[test]
fn nginx_keepalive_limits_cause_no_failures() {
    let Some(ng) = Nginx::start(
        "keepalive",
        "keepalive_requests 2; keepalive_timeout 1s;\n    location /slow/ { limit_rate 2k; }",
    ) else {
        return;
    };
    let mut first: Vec<String> = (0..20).map(|i| format!("/p/{i}.html")).collect();
    first.push("/slow/s.html".into());
    let first_refs: Vec<&str> = first.iter().map(String::as_str).collect();
    ng.write("index.html", &page(&first_refs));
    for i in 0..20 {
        ng.write(&format!("p/{i}.html"), &page(&["/"]));
    }
    let second: Vec<String> = (0..10).map(|i| format!("/q/{i}.html")).collect();
    let second_refs: Vec<&str> = second.iter().map(String::as_str).collect();
    let mut slow = page(&second_refs);
    // nginx sends 4 KB at 2k/s in about 2 s.
    slow.push_str(&" ".repeat(4_000 - slow.len()));
    ng.write("slow/s.html", &slow);
    for i in 0..10 {
        ng.write(&format!("q/{i}.html"), &page(&["/p/0.html"]));
    }
    let t = Instant::now();
    let r = crawl(&ng.url("/"), &["-c", "4", "--timeout", "5"]);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1100),
        "the slow page took {took:?}"
    );
    assert_eq!(r.lines.len(), 32, "{}", r.stderr);
    assert!(error_kinds(&r).is_empty(), "{:?}\n{}", r.lines, r.stderr);
    assert!(r.stderr.contains("errors: none"), "{}", r.stderr);
    let hits = ng.hits();
    let c = counts(&hits, ng.port());
    assert_eq!(c.len(), 33, "{c:?}");
    assert!(c.values().all(|&n| n == 1), "{c:?}");
    assert!(hits.iter().all(|h| h.conn_requests <= 2), "{hits:?}");
    assert!(hits.iter().any(|h| h.conn_requests == 2), "{hits:?}");
}

// ---------------------------------------------------------------- a few hundred pages

const TREE: usize = 300;

/// Page `i` of the tree: links to its children `2i+1` and `2i+2`, back to
/// `/`, and on a few pages to a missing page or a `return 500` location.
fn tree_links(i: usize) -> Vec<String> {
    let mut v: Vec<String> = [2 * i + 1, 2 * i + 2]
        .into_iter()
        .filter(|&c| c < TREE)
        .map(|c| format!("/t/{c}.html"))
        .collect();
    v.push("/".into());
    if i % 50 == 7 {
        v.push(format!("/missing/{i}.html"));
    }
    if i == 100 || i == 200 {
        v.push(format!("/boom/{i}"));
    }
    v
}

/// A 300-page binary tree (plus 6 links to missing pages and 2 to a
/// `return 500` location): every JSON line (status, bytes, links, error)
/// agrees with the access log and the files, the summary and `--stats`
/// count 8 status errors, 500s are requested twice (`--retries 1`), with
/// `-c 8` and `-o`. Then `--max-pages 50` with `-c 3` fetches exactly 50
/// pages, each once, and `--max-depth 3` with `-c 16` exactly the 8 pages
/// within three links of `/`.
#[test]
fn nginx_three_hundred_pages_lines_summary_and_limits_agree_with_the_log() {
    let Some(ng) = Nginx::start("tree", "location /boom/ { return 500; }") else {
        return;
    };
    let mut files: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let index = page(&["/t/0.html"]);
    ng.write("index.html", &index);
    files.insert("/".into(), (index.len(), 1));
    for i in 0..TREE {
        let links = tree_links(i);
        let refs: Vec<&str> = links.iter().map(String::as_str).collect();
        let body = page(&refs);
        ng.write(&format!("t/{i}.html"), &body);
        files.insert(format!("/t/{i}.html"), (body.len(), links.len()));
    }
    let dir = std::env::temp_dir().join(format!("sylvan-p30-tree-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out.jsonl");
    let stats = dir.join("stats.json");
    let r = crawl(
        &ng.url("/"),
        &[
            "-c",
            "8",
            "--retries",
            "1",
            "--backoff-ms",
            "20",
            "-o",
            out.to_str().unwrap(),
            "--stats",
            stats.to_str().unwrap(),
        ],
    );
    assert!(r.lines.is_empty(), "-o takes the lines off stdout");
    let text = std::fs::read_to_string(&out).unwrap();
    let stats_v: Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let r = Run {
        status: r.status,
        lines: text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        stderr: r.stderr,
    };
    assert_eq!(r.lines.len(), 1 + TREE + 6 + 2);
    let hits = ng.hits();
    let sent: BTreeMap<&str, u64> = hits
        .iter()
        .filter(|h| h.status == 200)
        .map(|h| (h.uri.as_str(), h.sent))
        .collect();
    for (path, l) in r.by_path() {
        let keys: BTreeSet<&str> = l.as_object().unwrap().keys().map(String::as_str).collect();
        for k in ["url", "status", "bytes", "links", "elapsed_ms", "error"] {
            assert!(keys.contains(k), "{path}: no {k} in {l}");
        }
        assert!(l["elapsed_ms"].is_number(), "{path}: elapsed_ms in {l}");
        if let Some(&(len, links)) = files.get(&path) {
            assert_eq!(l["status"], 200, "{path}");
            assert_eq!(l["bytes"], len, "{path}");
            assert_eq!(l["links"], links, "{path}");
            assert_eq!(sent[path.as_str()], len as u64, "{path}: the log's bytes");
            assert!(l["error"].is_null(), "{path}");
        } else if path.starts_with("/missing/") {
            assert_eq!(l["status"], 404, "{path}");
            assert_eq!(l["error"], "status", "{path}");
        } else {
            assert!(path.starts_with("/boom/"), "{path}");
            assert_eq!(l["status"], 500, "{path}");
            assert_eq!(l["error"], "status", "{path}");
        }
    }
    let c = counts(&hits, ng.port());
    let mut want: BTreeMap<String, usize> = r.paths().into_iter().map(|p| (p, 1)).collect();
    want.insert("/robots.txt".into(), 1);
    want.insert("/boom/100".into(), 2);
    want.insert("/boom/200".into(), 2);
    assert_eq!(c, want);
    let statuses_404 = hits.iter().filter(|h| h.status == 404).count();
    assert_eq!(statuses_404, 6 + 1, "6 missing pages and robots.txt");
    assert_eq!(hits.iter().filter(|h| h.status == 500).count(), 4);
    assert_eq!(error_kinds(&r), [("status".to_owned(), 8)].into());
    assert!(r.stderr.contains("crawled 309 pages"), "{}", r.stderr);
    assert!(r.stderr.contains("errors: 8 (status 8)"), "{}", r.stderr);
    assert_eq!(stats_v["errors"], serde_json::json!({"status": 8}));
    assert_eq!(stats_v["pages"], 309);
    assert!(stats_v["max_in_flight"].as_u64().unwrap() <= 8);

    // --max-pages 50, three at a time.
    let from = ng.log_len();
    let r = crawl(&ng.url("/"), &["-c", "3", "--max-pages", "50"]);
    assert_eq!(r.lines.len(), 50, "{}", r.stderr);
    let mut c = counts(&ng.hits_from(from), ng.port());
    assert_eq!(c.remove("/robots.txt"), Some(1));
    let want: BTreeMap<String, usize> = r.paths().into_iter().map(|p| (p, 1)).collect();
    assert_eq!(c, want);

    // --max-depth 3, sixteen at a time: `/` is depth 0, `/t/0` 1, ...
    let from = ng.log_len();
    let r = crawl(&ng.url("/"), &["-c", "16", "--max-depth", "3"]);
    let expected = [
        "/",
        "/t/0.html",
        "/t/1.html",
        "/t/2.html",
        "/t/3.html",
        "/t/4.html",
        "/t/5.html",
        "/t/6.html",
    ];
    let mut want: Vec<String> = strs(&expected);
    want.sort();
    assert_eq!(r.paths(), want);
    let mut c = counts(&ng.hits_from(from), ng.port());
    assert_eq!(c.remove("/robots.txt"), Some(1));
    assert_eq!(c, once(&expected));
}

// ---------------------------------------------------------------- more of nginx's ways

/// A robots.txt answered `503` with `Retry-After: 2`: the README says
/// robots.txt is "retried like a page", and a page's 503 waits for a
/// longer `Retry-After` (see `nginx_error_pages_and_retries_with_backoff`);
/// nginx's log times the three requests.
#[test]
fn nginx_robots_txt_503_retry_after_is_honoured_like_a_page() {
    let Some(ng) = Nginx::start(
        "robots-retry-after",
        "location = /robots.txt { add_header Retry-After 2 always; return 503; }",
    ) else {
        return;
    };
    ng.write("index.html", &page(&[]));
    let r = crawl(&ng.url("/"), &["-c", "1"]);
    assert_eq!(r.by_path()["/"]["error"], "robots");
    let times: Vec<f64> = ng
        .hits()
        .iter()
        .filter(|h| h.uri == "/robots.txt")
        .map(|h| h.msec)
        .collect();
    assert_eq!(times.len(), 3, "{times:?}");
    for w in times.windows(2) {
        assert!(
            w[1] - w[0] >= 1.9,
            "retried {:.3} s after a 503 with Retry-After: 2 ({times:?})",
            w[1] - w[0]
        );
    }
}

/// `absolute_redirect off`: nginx's directory redirect carries a relative
/// `Location: /rel/`, resolved against the page; with `--max-depth 1` the
/// target of `/docs`'s 301 has its origin's depth (fetched) while the
/// links of `/docs/` (depth 2) are not.
#[test]
fn nginx_relative_redirects_and_depth_through_a_redirect() {
    let Some(ng) = Nginx::start("relative", "location /rel { absolute_redirect off; }") else {
        return;
    };
    ng.write("index.html", &page(&["/rel", "/docs"]));
    ng.write("rel/index.html", &page(&["deeper.html"]));
    ng.write("rel/deeper.html", &page(&[]));
    ng.write("docs/index.html", &page(&["deep.html"]));
    ng.write("docs/deep.html", &page(&[]));
    let r = crawl(&ng.url("/"), &["-c", "2", "--max-depth", "1"]);
    assert_eq!(r.paths(), strs(&["/", "/docs", "/docs/", "/rel", "/rel/"]));
    let by = r.by_path();
    assert_eq!(by["/rel"]["redirect"], ng.url("/rel/").as_str());
    assert!(error_kinds(&r).is_empty(), "{:?}", r.lines);
    let c = counts(&ng.hits(), ng.port());
    assert_eq!(
        c,
        once(&["/", "/robots.txt", "/docs", "/docs/", "/rel", "/rel/"])
    );
    let rel = ng.hits().into_iter().find(|h| h.uri == "/rel").unwrap();
    assert_eq!(rel.status, 301);
}

/// nginx's `charset iso-8859-1` puts the charset in the Content-Type: a
/// page whose link is `caf\xE9.html` in Latin-1 is read as browsers read
/// it, and nginx serves `/caf%C3%A9.html` from the file `café.html`.
#[test]
fn nginx_charset_header_decodes_latin1_links() {
    let Some(ng) = Nginx::start("charset", "location /latin/ { charset iso-8859-1; }") else {
        return;
    };
    ng.write("index.html", &page(&["/latin/"]));
    ng.write_bytes(
        "latin/index.html",
        b"<html><body><a href=\"caf\xe9.html\">caf\xe9</a></body></html>",
    );
    ng.write("latin/café.html", &page(&[]));
    let r = crawl(&ng.url("/"), &["-c", "2"]);
    assert_eq!(r.paths(), strs(&["/", "/latin/", "/latin/caf%C3%A9.html"]));
    assert_eq!(r.by_path()["/latin/caf%C3%A9.html"]["status"], 200);
    let c = counts(&ng.hits(), ng.port());
    assert_eq!(
        c,
        once(&["/", "/robots.txt", "/latin/", "/latin/caf%C3%A9.html"])
    );
}

/// A 600 KB robots.txt served gzipped by nginx: a rule in its first
/// 512 KiB is obeyed, one past that is not (the documented limit: only
/// the first 512 KiB are read).
#[test]
fn nginx_large_gzipped_robots_txt_is_read_to_512_kib() {
    let Some(ng) = Nginx::start(
        "robots-large",
        "gzip on; gzip_types text/plain; gzip_min_length 20;",
    ) else {
        return;
    };
    let mut robots = String::from("User-agent: *\nDisallow: /early/\n");
    while robots.len() < 600_000 {
        robots.push_str("# padding padding padding padding padding padding\n");
    }
    robots.push_str("Disallow: /late/\n");
    ng.write("robots.txt", &robots);
    ng.write("index.html", &page(&["/early/x.html", "/late/x.html"]));
    ng.write("early/x.html", &page(&[]));
    ng.write("late/x.html", &page(&[]));
    let r = crawl(&ng.url("/"), &["-c", "2"]);
    let by = r.by_path();
    assert_eq!(by["/early/x.html"]["error"], "robots");
    assert!(by["/late/x.html"]["error"].is_null());
    let hits = ng.hits();
    let rob = hits.iter().find(|h| h.uri == "/robots.txt").unwrap();
    assert_ne!(rob.gzip_ratio, "-", "{rob:?}");
    assert_eq!(
        counts(&hits, ng.port()),
        once(&["/", "/robots.txt", "/late/x.html"])
    );
}
