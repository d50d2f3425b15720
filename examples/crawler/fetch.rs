//! One page fetch through ureq on sylvan, with the hostile-server limits.

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
    /// Redirects followed per page.
    pub max_redirects: u32,
    /// Wall time per attempt (connect, request, headers, body).
    pub timeout: Duration,
}

/// A fetched page.
#[derive(Debug)]
pub struct Fetched {
    pub status: u16,
    /// Where the redirects ended.
    pub final_url: Url,
    pub bytes: u64,
    pub body: Vec<u8>,
    /// Whether the body is HTML worth parsing (by its Content-Type).
    pub is_html: bool,
}

/// Why a fetch failed: a kind for the counters, a message, and whether a
/// retry may help.
#[derive(Debug, Clone)]
pub struct FetchError {
    pub kind: &'static str,
    pub message: String,
    pub transient: bool,
    pub status: Option<u16>,
}

impl FetchError {
    pub fn new(kind: &'static str, message: impl Into<String>, transient: bool) -> FetchError {
        FetchError {
            kind,
            message: message.into(),
            transient,
            status: None,
        }
    }
}

/// The agent every fetch on this hub shares (keep-alive pool included).
///
/// The pool keeps one idle connection per fetching greenlet: with ureq's
/// default of 3 per host, 61 of 64 finished requests closed their
/// connection, and every new one paid a connect plus 256 KiB of freshly
/// zeroed buffers (a sixth of the crawl's CPU before this was set).
pub fn agent(limits: &Limits, user_agent: &str, concurrency: usize) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .max_idle_connections(concurrency.max(10))
        .max_idle_connections_per_host(concurrency.max(3))
        .http_status_as_error(false)
        .max_redirects(limits.max_redirects)
        .max_response_header_size(limits.max_header)
        .user_agent(user_agent)
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
        E::Tls(m) => FetchError::new("tls", m, false),
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

/// Fetches `url` once. Non-2xx statuses are errors of kind `status`
/// (5xx and 429 are transient).
pub fn fetch(agent: &ureq::Agent, url: &Url, limits: &Limits) -> Result<Fetched, FetchError> {
    use ureq::ResponseExt;
    let mut resp = agent.get(url.as_str()).call().map_err(classify)?;
    let status = resp.status().as_u16();
    let final_url = Url::parse(&resp.get_uri().to_string()).unwrap_or_else(|_| url.clone());
    let is_html = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| ct.to_ascii_lowercase().contains("html"));
    let body = resp
        .body_mut()
        .with_config()
        .limit(limits.max_body)
        .read_to_vec()
        .map_err(classify)?;
    if !(200..300).contains(&status) {
        let transient = status >= 500 || status == 429;
        let mut e = FetchError::new("status", format!("HTTP {status}"), transient);
        e.status = Some(status);
        return Err(e);
    }
    let bytes = body.len() as u64;
    Ok(Fetched {
        status,
        final_url,
        bytes,
        body,
        is_html,
    })
}
