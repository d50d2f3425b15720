//! The built-in demo site, served by sylvan itself on 127.0.0.1 with an
//! OS-chosen port, so a new user sees the crawler work offline.
//!
//! `/` links into a few thousand generated pages (`/page/N`, ten links
//! each), and some of them into the hostile corners every real crawl meets:
//!
//! | path | what it does |
//! |---|---|
//! | `/missing/N` | 404 |
//! | `/slow/N` | answers after a delay ([`SLOW`] by default) |
//! | `/never` | accepts the request and never answers |
//! | `/redirect` | 301 to `/landing` |
//! | `/loop/a`, `/loop/b` | redirect to each other forever |
//! | `/bad-utf8` | a page with invalid UTF-8 (and one more link) |
//! | `/liar` | `Content-Length: 100000`, sends 100 bytes and closes |
//! | `/reset` | closes the connection without an answer |
//! | `/huge` | a 20 MiB body (over the default body limit) |
//! | `/bomb` | gzip of 16 MiB of zeros (over the default decompressed limit) |
//! | `/private/…` | disallowed by `/robots.txt` |

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use sylvan::net::{StreamServer, TcpListener, TcpStream};

/// How long `/slow/N` takes to answer by default.
pub const SLOW: Duration = Duration::from_millis(300);

/// Pages `/page/{N}` links to the special paths (for tests to predict).
pub const SPECIAL_LINKS: &[(usize, &str)] = &[
    (1, "/slow/1"),
    (2, "/slow/2"),
    (3, "/never"),
    (4, "/redirect"),
    (5, "/loop/a"),
    (6, "/bad-utf8"),
    (7, "/liar"),
    (8, "/reset"),
    (9, "/huge"),
    (10, "/bomb"),
    (11, "/private/secret"),
];

/// Every `MISSING_EVERY`-th page links to `/missing/N`.
pub const MISSING_EVERY: usize = 100;

/// The demo site: dropping it stops the server.
pub struct DemoSite {
    pub addr: SocketAddr,
    pub pages: usize,
    server: Option<StreamServer>,
}

impl Drop for DemoSite {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop(Some(Duration::from_millis(100)));
        }
    }
}

/// Starts the site with `pages` generated pages; `/slow/N` answers after
/// `slow`.
pub fn start(pages: usize, slow: Duration) -> io::Result<DemoSite> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let site = Rc::new(Site::new(pages, slow));
    let server = StreamServer::new(listener, move |stream: TcpStream, _peer: SocketAddr| {
        let _ = serve(&site, stream);
    });
    let server = server.start()?;
    Ok(DemoSite {
        addr,
        pages,
        server: Some(server),
    })
}

struct Site {
    pages: usize,
    slow: Duration,
    /// Made on first request: compressing takes a moment.
    bomb: RefCell<Option<Rc<Vec<u8>>>>,
    page_buf: RefCell<String>,
}

impl Site {
    fn new(pages: usize, slow: Duration) -> Site {
        Site {
            pages,
            slow,
            bomb: RefCell::new(None),
            page_buf: RefCell::new(String::new()),
        }
    }

    /// The gzip bomb, made once. Compressing is CPU work (with deep frames in
    /// debug builds): it runs on the thread pool, off the hub and off this
    /// greenlet's stack; no borrow is held while it runs.
    fn bomb(&self) -> Rc<Vec<u8>> {
        if let Some(b) = self.bomb.borrow().as_ref() {
            return b.clone();
        }
        let made = Rc::new(sylvan::spawn_blocking(|| gzip_zeros(16 << 20)));
        *self.bomb.borrow_mut() = Some(made.clone());
        made
    }

    /// The links of page `i` (as paths).
    fn links(&self, i: usize) -> Vec<String> {
        let n = self.pages;
        let mut v: Vec<String> = Vec::with_capacity(12);
        // A tree (children 2i+1, 2i+2) keeps every page reachable; the
        // rest are pseudo-random cross links.
        for c in [2 * i + 1, 2 * i + 2] {
            if c < n {
                v.push(format!("/page/{c}"));
            }
        }
        let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        while v.len() < 10 {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            v.push(format!(
                "/page/{}",
                x.wrapping_mul(0x2545F4914F6CDD1D) % n as u64
            ));
        }
        for (page, path) in SPECIAL_LINKS {
            if *page == i {
                v.push((*path).to_owned());
            }
        }
        if i % MISSING_EVERY == MISSING_EVERY - 1 {
            v.push(format!("/missing/{i}"));
        }
        v
    }

    fn page(&self, i: usize) -> Vec<u8> {
        let mut s = self.page_buf.borrow_mut();
        s.clear();
        write!(
            s,
            "<!doctype html><html><head><title>Page {i}</title></head><body><h1>Page {i}</h1>"
        )
        .unwrap();
        s.push_str("<p>");
        for _ in 0..30 {
            s.push_str("Lorem ipsum dolor sit amet, consectetur adipiscing elit. ");
        }
        s.push_str("</p><ul>");
        for l in self.links(i) {
            write!(s, "<li><a href=\"{l}\">{l}</a></li>").unwrap();
        }
        s.push_str("</ul></body></html>");
        s.as_bytes().to_vec()
    }
}

/// gzip of `n` zero bytes.
fn gzip_zeros(n: usize) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..n >> 20 {
        e.write_all(&zeros).unwrap();
    }
    e.finish().unwrap()
}

enum Answer {
    Body {
        status: &'static str,
        ctype: &'static str,
        extra: String,
        body: Vec<u8>,
    },
    Redirect(&'static str),
    Lie,
    Reset,
    Never,
}

fn route(site: &Site, path: &str) -> Answer {
    let html = |body: Vec<u8>| Answer::Body {
        status: "200 OK",
        ctype: "text/html; charset=utf-8",
        extra: String::new(),
        body,
    };
    let not_found = || Answer::Body {
        status: "404 Not Found",
        ctype: "text/html",
        extra: String::new(),
        body: b"<html><body>not found</body></html>".to_vec(),
    };
    match path {
        "/" | "/index.html" => site
            .pages
            .checked_sub(1)
            .map_or_else(not_found, |_| html(site.page(0))),
        "/robots.txt" => Answer::Body {
            status: "200 OK",
            ctype: "text/plain",
            extra: String::new(),
            body: b"User-agent: *\nDisallow: /private/\n".to_vec(),
        },
        "/never" => Answer::Never,
        "/redirect" => Answer::Redirect("/landing"),
        "/landing" => {
            html(b"<html><body>landed <a href=\"/page/0\">home</a></body></html>".to_vec())
        }
        "/loop/a" => Answer::Redirect("/loop/b"),
        "/loop/b" => Answer::Redirect("/loop/a"),
        "/bad-utf8" => html(
            b"<html><body>\xff\xfe broken \xc3\x28 <a href=\"/page/12\">\x80ok</a></body></html>"
                .to_vec(),
        ),
        "/liar" => Answer::Lie,
        "/reset" => Answer::Reset,
        "/huge" => Answer::Body {
            status: "200 OK",
            ctype: "text/html",
            extra: String::new(),
            body: vec![b'x'; 20 << 20],
        },
        "/bomb" => Answer::Body {
            status: "200 OK",
            ctype: "text/html",
            extra: "Content-Encoding: gzip\r\n".into(),
            body: site.bomb().to_vec(),
        },
        p if p.starts_with("/slow/") => {
            sylvan::sleep(site.slow);
            html(b"<html><body>slow but here <a href=\"/page/0\">home</a></body></html>".to_vec())
        }
        p => match p
            .strip_prefix("/page/")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(i) if i < site.pages => html(site.page(i)),
            _ => not_found(),
        },
    }
}

/// Serves HTTP/1.1 requests on one connection (keep-alive) until the peer
/// closes it or asks to.
fn serve(site: &Site, mut stream: TcpStream) -> io::Result<()> {
    let mut buf = vec![0u8; 16 << 10];
    let mut filled = 0;
    loop {
        // Read one request head (the demo ignores request bodies).
        let end = loop {
            if let Some(i) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if filled == buf.len() {
                return Ok(()); // head too large
            }
            let n = stream.read(&mut buf[filled..])?;
            if n == 0 {
                return Ok(());
            }
            filled += n;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.copy_within(end..filled, 0);
        filled -= end;
        let mut words = head.split_whitespace();
        let (_method, path) = (words.next().unwrap_or(""), words.next().unwrap_or("/"));
        let close = head.to_ascii_lowercase().contains("connection: close");
        match route(site, path) {
            Answer::Body {
                status,
                ctype,
                extra,
                body,
            } => {
                let mut out = Vec::with_capacity(body.len() + 160);
                write!(
                    out,
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{extra}{}\r\n",
                    body.len(),
                    if close { "Connection: close\r\n" } else { "" }
                )?;
                out.extend_from_slice(&body);
                stream.write_all(&out)?;
                if close {
                    return Ok(());
                }
            }
            Answer::Redirect(to) => {
                write!(
                    stream,
                    "HTTP/1.1 301 Moved Permanently\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n"
                )?;
            }
            Answer::Lie => {
                stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100000\r\n\r\n",
                )?;
                stream.write_all(&[b'a'; 100])?;
                return Ok(());
            }
            Answer::Reset => return Ok(()),
            Answer::Never => loop {
                sylvan::sleep(Duration::from_secs(3600));
            },
        }
    }
}
