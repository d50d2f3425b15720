//! One page fetch through ureq on sylvan, with the hostile-server limits.

use std::cell::RefCell;
use std::time::Duration;

use url::Url;

/// Bounds that keep a crawl safe whatever the server does.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Body bytes after decompression (ureq counts decoded bytes, so a gzip
    /// bomb stops here too).
    pub max_body: u64,
    /// Bytes of response head.
    pub max_header: usize,
    /// Redirects followed from one page (the crawler follows them itself,
    /// so each hop passes the seen-set, the scope and robots.txt).
    pub max_redirects: u32,
    /// Wall time per attempt (connect, request, headers, body).
    pub timeout: Duration,
}

/// A fetched page.
#[derive(Debug)]
pub struct Fetched {
    pub status: u16,
    /// A redirect's `Location` (301, 302, 303, 307 or 308), as sent: the
    /// agent follows no redirects itself.
    pub location: Option<String>,
    pub bytes: u64,
    pub body: Vec<u8>,
    /// Whether the body is HTML worth parsing (by its Content-Type).
    pub is_html: bool,
    /// The encoding its Content-Type names (`charset=`), if it names one
    /// that the Encoding Standard knows.
    pub encoding: Option<&'static encoding_rs::Encoding>,
}

/// Why a fetch failed: a kind for the counters, a message, and whether a
/// retry may help.
#[derive(Debug, Clone)]
pub struct FetchError {
    pub kind: &'static str,
    pub message: String,
    pub transient: bool,
    pub status: Option<u16>,
    /// A 429 or 503's `Retry-After`, in seconds (capped at a minute): the
    /// wait before a retry, when longer than the backoff.
    pub retry_after: Option<Duration>,
}

impl FetchError {
    pub fn new(kind: &'static str, message: impl Into<String>, transient: bool) -> FetchError {
        FetchError {
            kind,
            message: message.into(),
            transient,
            status: None,
            retry_after: None,
        }
    }
}

/// Concurrent fetches per agent (see [`Agents`]).
const FETCHES_PER_AGENT: usize = 8;

/// The agents the fetches of this hub share: one per
/// [`FETCHES_PER_AGENT`] greenlets of the pool, each fetch leasing a slot
/// of one of them for its duration.
///
/// ureq's keep-alive pool compares the key of every idle connection it
/// holds each time a connection is returned or made. With one agent for 64
/// greenlets on one host, most of the 64 connections sit idle in one list
/// between requests, and those comparisons were a tenth of the crawl's
/// instructions (callgrind, W5: 345M for 2,000 pages with one agent, 309M
/// with eight). The slots add up to `--concurrency`, and an agent has no
/// more fetches at once than it has slots, so no agent connects while
/// another holds the idle connection it could have used: the crawl opens
/// no more connections to a host than `--concurrency` (probes73 cr01). The
/// slot freed last is taken first, so a fetch usually finds the connection
/// its predecessor left.
#[derive(Debug)]
pub struct Agents {
    all: Vec<ureq::Agent>,
    /// The free slots, each naming its agent.
    free: RefCell<Vec<usize>>,
}

impl Agents {
    pub fn new(limits: &Limits, user_agent: &str, concurrency: usize) -> Agents {
        let slots = concurrency.max(1);
        let n = slots.div_ceil(FETCHES_PER_AGENT);
        Agents {
            all: (0..n)
                .map(|_| agent(limits, user_agent, concurrency))
                .collect(),
            // Popped from the end: agent 0's slots first.
            free: RefCell::new((0..slots).rev().map(|s| s / FETCHES_PER_AGENT).collect()),
        }
    }

    /// Runs `f` with the agent of a free slot, the slot leased until `f`
    /// returns or unwinds (a kill, a timeout). Fetches never outnumber the
    /// slots (the pool has `--concurrency` greenlets, each fetching one
    /// page at a time); if they did, the extra ones would share agent 0.
    pub fn with<R>(&self, f: impl FnOnce(&ureq::Agent) -> R) -> R {
        struct Lease<'a> {
            free: &'a RefCell<Vec<usize>>,
            slot: Option<usize>,
        }
        impl Drop for Lease<'_> {
            fn drop(&mut self) {
                if let Some(slot) = self.slot {
                    self.free.borrow_mut().push(slot);
                }
            }
        }
        let lease = Lease {
            free: &self.free,
            slot: self.free.borrow_mut().pop(),
        };
        f(&self.all[lease.slot.unwrap_or(0)])
    }
}

/// An agent (keep-alive pool included) for [`Agents`].
///
/// The pool keeps one idle connection per fetching greenlet: with ureq's
/// default of 3 per host, 61 of 64 finished requests closed their
/// connection, and every new one paid a connect plus 256 KiB of freshly
/// zeroed buffers (a sixth of the crawl's CPU before this was set).
fn agent(limits: &Limits, user_agent: &str, concurrency: usize) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .max_idle_connections(concurrency.max(10))
        .max_idle_connections_per_host(concurrency.max(3))
        .http_status_as_error(false)
        // The crawler follows redirects itself: a target ureq followed
        // would bypass the seen-set, the host scope and robots.txt.
        .max_redirects(0)
        .max_response_header_size(limits.max_header)
        .user_agent(user_agent)
        // Room for the largest response head we accept (the input buffer
        // grows to this only when a response needs it), and for a request
        // head: ureq's default output buffer (128 KiB) is zeroed for every
        // new connection, which cost more than the pages on a small site.
        // One byte over the header limit, so that a head too large to
        // accept is seen as such by ureq.
        .input_buffer_size(limits.max_header.max(16 << 10) + 1)
        .output_buffer_size(REQUEST_HEAD)
        // A backstop behind the greenlet's own timeout.
        .timeout_global(Some(limits.timeout + Duration::from_secs(1)))
        .build();
    sylvan::ureq::agent(config)
}

fn classify(e: ureq::Error) -> FetchError {
    use ureq::Error as E;
    match e {
        E::Timeout(t) => FetchError::new("timeout", format!("timed out ({t})"), true),
        E::HostNotFound => FetchError::new("dns", "host not found", false),
        E::ConnectionFailed => FetchError::new("connect", "connection failed", true),
        E::TooManyRedirects => FetchError::new("redirect", "too many redirects", false),
        E::RedirectFailed => FetchError::new("redirect", "redirect failed", false),
        E::BodyExceedsLimit(n) => {
            FetchError::new("too_large", format!("body over {n} bytes"), false)
        }
        E::LargeResponseHeader(got, max) => FetchError::new(
            "too_large",
            format!("response head over {max} bytes ({got} read)"),
            false,
        ),
        E::Tls(m) => FetchError::new("tls", m, false),
        E::Rustls(e) => FetchError::new("tls", e.to_string(), false),
        // rustls reports a failed handshake (an untrusted or expired
        // certificate, a fatal alert) through io::Error.
        E::Io(io) if io.get_ref().is_some_and(|e| e.is::<rustls::Error>()) => {
            FetchError::new("tls", io.to_string(), false)
        }
        E::Io(io) => {
            use std::io::ErrorKind as K;
            let (kind, transient) = match io.kind() {
                K::ConnectionRefused => ("connect", true),
                K::TimedOut | K::WouldBlock => ("timeout", true),
                K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
                    ("reset", true)
                }
                K::InvalidData => ("protocol", false),
                _ => ("io", true),
            };
            FetchError::new(kind, io.to_string(), transient)
        }
        E::Protocol(p) => FetchError::new("protocol", p.to_string(), false),
        E::Http(h) => FetchError::new("protocol", h.to_string(), false),
        E::BadUri(u) => FetchError::new("url", u, false),
        other => FetchError::new("other", other.to_string(), false),
    }
}

thread_local! {
    /// Body buffers of finished pages, for the next fetches: a page-sized
    /// allocation per page otherwise (and glibc consolidates its free
    /// lists on every request of that size).
    static BUFFERS: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// An empty buffer with room for `len` bytes, reused if one is free.
fn take_buffer(len: usize) -> Vec<u8> {
    let mut buf = BUFFERS.with(|b| b.borrow_mut().pop()).unwrap_or_default();
    buf.reserve(len);
    buf
}

/// Gives a body back for reuse once the page is done with it. Only a few
/// buffers of ordinary size are kept.
pub fn recycle(mut body: Vec<u8>) {
    const KEEP: usize = 256;
    const LARGEST: usize = 256 << 10;
    if body.capacity() <= LARGEST {
        body.clear();
        BUFFERS.with(|b| {
            let mut b = b.borrow_mut();
            if b.len() < KEEP {
                b.push(body);
            }
        });
    }
}

/// Whether `needle` (lowercase ASCII) occurs in `hay`, ignoring ASCII case.
fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// How much of a robots.txt is read: RFC 9309 asks crawlers to parse at
/// least 500 KiB; the rest of a larger file is ignored.
pub const ROBOTS_MAX: u64 = 512 << 10;

/// Redirects followed for a robots.txt (RFC 9309 asks for at least five).
pub const ROBOTS_REDIRECTS: u32 = 5;

/// The wait a 429 or 503 asks for in `Retry-After`, at most a minute. Only
/// the delay-seconds form; an HTTP date is ignored (the backoff applies).
fn retry_after(resp: &ureq::http::Response<ureq::Body>) -> Option<Duration> {
    let status = resp.status().as_u16();
    (status == 429 || status == 503)
        .then(|| resp.headers().get("retry-after"))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(60)))
}

/// Fetches a robots.txt: its first [`ROBOTS_MAX`] bytes (decoded), as
/// text; any status but 2xx is an error carrying the status.
pub fn fetch_robots(agent: &ureq::Agent, url: &Url) -> Result<String, FetchError> {
    use std::io::Read;
    // RFC 9309 2.3.1.2: follow at least five redirects for robots.txt.
    let mut resp = agent
        .get(url.as_str())
        .config()
        .max_redirects(ROBOTS_REDIRECTS)
        .build()
        .call()
        .map_err(classify)?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        // 5xx and 429 may pass: worth a retry, as for pages, after the
        // server's Retry-After when it gives one.
        let transient = status >= 500 || status == 429;
        let mut e = FetchError::new("status", format!("HTTP {status}"), transient);
        e.status = Some(status);
        e.retry_after = retry_after(&resp);
        return Err(e);
    }
    let mut body = Vec::new();
    resp.body_mut()
        .with_config()
        .limit(ROBOTS_MAX + 1)
        .reader()
        .take(ROBOTS_MAX)
        .read_to_end(&mut body)
        .map_err(|e| classify(ureq::Error::from(e)))?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Fetches `url` once, following no redirect. A redirect (301, 302, 303,
/// 307, 308) is a success carrying its `Location`; other statuses but 2xx
/// are errors of kind `status` (5xx and 429 are transient).
/// The largest request head the crawler sends (ureq's output buffer per
/// connection): a URL of up to 31 KiB. Servers commonly refuse far less
/// (nginx answers 414 past 8 KiB).
const REQUEST_HEAD: usize = 32 << 10;

pub fn fetch(agent: &ureq::Agent, url: &Url, limits: &Limits) -> Result<Fetched, FetchError> {
    use std::io::Read;
    // The request head (the URL's path and query, the headers) must fit
    // the agent's output buffer; said plainly rather than as ureq's
    // "output too small".
    if url.as_str().len() > REQUEST_HEAD - 1024 {
        return Err(FetchError::new(
            "url",
            format!(
                "URL of {} bytes: longer than the crawler sends (its request head is at most {} KiB)",
                url.as_str().len(),
                REQUEST_HEAD >> 10
            ),
            false,
        ));
    }
    let mut resp = agent.get(url.as_str()).call().map_err(classify)?;
    let status = resp.status().as_u16();
    let retry_after = retry_after(&resp);
    let redirect = matches!(status, 301 | 302 | 303 | 307 | 308);
    let location = redirect
        .then(|| resp.headers().get("location"))
        .flatten()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    // A redirect's body is a note for browsers: its links are not followed.
    let content_type = resp.headers().get("content-type").map(|v| v.as_bytes());
    let is_html = !redirect && content_type.is_none_or(|ct| contains_ignore_case(ct, b"html"));
    let encoding = content_type.and_then(crate::links::charset_param);
    // Sized from Content-Length (within the limit) so the body is read
    // straight into place instead of growing from nothing.
    let body_ref = resp.body_mut();
    let expected = body_ref.content_length().unwrap_or(0).min(limits.max_body);
    let mut body = take_buffer(expected as usize);
    body_ref
        .with_config()
        .limit(limits.max_body)
        .reader()
        .read_to_end(&mut body)
        .map_err(|e| classify(ureq::Error::from(e)))?;
    if !redirect && !(200..300).contains(&status) {
        let transient = status >= 500 || status == 429;
        let mut e = FetchError::new("status", format!("HTTP {status}"), transient);
        e.status = Some(status);
        e.retry_after = retry_after;
        return Err(e);
    }
    let bytes = body.len() as u64;
    Ok(Fetched {
        status,
        location,
        bytes,
        body,
        is_html,
        encoding,
    })
}
