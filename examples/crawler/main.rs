//! A web crawler written in plain blocking style on sylvan: a pool of
//! greenlets, a blocking HTTP client (ureq over sylvan sockets), timeouts
//! and exception callbacks, all on one thread.
//!
//! ```sh
//! cargo run --release --example crawler                    # crawl the built-in demo site
//! cargo run --release --example crawler -- https://example.com/ -o pages.jsonl
//! cargo run --release --example crawler -- --help
//! ```
//!
//! With no URL it starts the demo site (see `demo.rs`) on 127.0.0.1 and
//! crawls it. Output is one JSON line per page; a progress line goes to
//! stderr when it is a terminal, and a summary at the end. Ctrl-C stops
//! cleanly (the pool is killed, output flushed, summary printed).

mod demo;
mod fetch;
mod links;
mod report;
mod robots;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Parser;
use sylvan::pool::Pool;
use sylvan::sync::Queue;
use url::Url;

use fetch::{FetchError, Limits};
use report::{Page, Report};
use robots::Robots;

/// Crawl a web site with a pool of greenlets on one thread.
#[derive(Parser, Debug, Clone)]
#[command(version)]
struct Args {
    /// Start URLs. None: start the built-in demo site and crawl it.
    urls: Vec<String>,
    /// Follow links to any host (default: only the start URLs' hosts).
    #[arg(long)]
    all_hosts: bool,
    /// Stop after this many pages.
    #[arg(long, default_value_t = 100_000)]
    max_pages: usize,
    /// Do not follow links deeper than this (start URLs are depth 0).
    #[arg(long, default_value_t = 64)]
    max_depth: u32,
    /// Greenlets fetching at once (the Pool size).
    #[arg(short, long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds per page attempt (connect, request, body). Default 10, or 1
    /// on the demo site.
    #[arg(long)]
    timeout: Option<f64>,
    /// Retries of a transient failure (timeout, refused, reset, 5xx, 429).
    /// Default 2, or 1 on the demo site.
    #[arg(long)]
    retries: Option<u32>,
    /// Backoff before the first retry in ms; doubles each retry.
    #[arg(long, default_value_t = 200)]
    backoff_ms: u64,
    /// User-Agent header (also the robots.txt group we follow).
    #[arg(long, default_value = "sylvan-crawler/0.1")]
    user_agent: String,
    /// Write JSON lines here (default: stdout; on the demo site with a
    /// terminal for stdout, crawl.jsonl).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Largest body kept, after decompression, in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    max_body: u64,
    /// Largest response head in bytes.
    #[arg(long, default_value_t = 64 << 10)]
    max_header: usize,
    /// Redirects followed per page.
    #[arg(long, default_value_t = 5)]
    max_redirects: u32,
    /// Ignore robots.txt.
    #[arg(long)]
    no_robots: bool,
    /// Pages of the demo site.
    #[arg(long, default_value_t = 3000)]
    demo_pages: usize,
    /// How long the demo site's slow pages take, in ms.
    #[arg(long, default_value_t = demo::SLOW.as_millis() as u64)]
    demo_slow_ms: u64,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    stats: Option<PathBuf>,
    /// No progress line even on a terminal.
    #[arg(long)]
    no_progress: bool,
}

/// The crawl's shared state (one hub, so `Rc` and `RefCell`).
struct Crawl {
    args: Args,
    retries: u32,
    limits: Limits,
    agent: ureq::Agent,
    report: RefCell<Report>,
    /// Every URL queued (or reached by a redirect), as text.
    seen: RefCell<HashSet<Box<str>>>,
    /// The start URLs' hosts: a handful, so a list.
    hosts: Vec<String>,
    robots: RefCell<HashMap<String, Rc<Robots>>>,
    frontier: Queue<(Url, u32)>,
    /// The links of the page being parsed, kept between pages: a fresh
    /// vector grows through sizes that glibc serves from its slower bins.
    found: RefCell<Vec<Url>>,
    /// Pages queued or being fetched; the frontier closes when it drops to 0.
    pending: Cell<usize>,
    stopped: Cell<bool>,
}

impl Crawl {
    /// Queues `url` unless seen, out of scope or over the limits.
    fn offer(&self, url: Url, depth: u32) {
        if self.stopped.get() || depth > self.args.max_depth {
            return;
        }
        if !self.args.all_hosts
            && !url
                .host_str()
                .is_some_and(|h| self.hosts.iter().any(|s| s == h))
        {
            return;
        }
        {
            // Most links point at pages already seen: look up before
            // copying the URL for the set.
            let mut seen = self.seen.borrow_mut();
            if seen.len() >= self.args.max_pages || seen.contains(url.as_str()) {
                return;
            }
            seen.insert(url.as_str().into());
        }
        self.pending.set(self.pending.get() + 1);
        if self.frontier.put((url, depth)).is_err() {
            self.done_one();
        }
    }

    fn done_one(&self) {
        let n = self.pending.get() - 1;
        self.pending.set(n);
        if n == 0 {
            self.frontier.close();
        }
    }

    fn robots_for(&self, url: &Url) -> Rc<Robots> {
        let origin = url.origin().ascii_serialization();
        if let Some(r) = self.robots.borrow().get(&origin) {
            return r.clone();
        }
        // RFC 9309 2.3.1: a robots.txt that is missing (4xx but 429) allows
        // everything; one that is unreachable (5xx, a network error, a
        // timeout) disallows everything. Only its first 512 KiB are read.
        let rules = match url.join("/robots.txt") {
            Ok(robots_url) => match fetch::fetch_robots(&self.agent, &robots_url) {
                Ok(text) => Robots::parse(&text, &self.args.user_agent),
                Err(e)
                    if e.status
                        .is_some_and(|s| (400..500).contains(&s) && s != 429) =>
                {
                    Robots::default()
                }
                Err(_) => Robots::disallow_all(),
            },
            Err(_) => Robots::default(),
        };
        let rules = Rc::new(rules);
        self.robots.borrow_mut().insert(origin, rules.clone());
        rules
    }

    /// Fetches one page (with retries) and queues its links.
    fn visit(&self, url: &Url, depth: u32) {
        let started = Instant::now();
        let mut page = Page {
            url: url.as_str(),
            status: None,
            bytes: 0,
            links: 0,
            elapsed: Duration::ZERO,
            error: None,
        };
        if !self.args.no_robots {
            let path = &url[url::Position::BeforePath..];
            if !self.robots_for(url).allowed(path) {
                page.error = Some(("robots", "disallowed by robots.txt".into()));
                page.elapsed = started.elapsed();
                self.record(&page);
                return;
            }
        }
        let mut attempt = 0;
        let result = loop {
            let r = sylvan::with_timeout(self.limits.timeout, || {
                fetch::fetch(&self.agent, url, &self.limits)
            })
            .unwrap_or_else(|_| {
                Err(FetchError::new(
                    "timeout",
                    format!("no answer within {:?}", self.limits.timeout),
                    true,
                ))
            });
            match r {
                Err(e) if e.transient && attempt < self.retries => {
                    let backoff = Duration::from_millis(self.args.backoff_ms << attempt);
                    // A server's Retry-After (capped at a minute) wins when
                    // longer.
                    sylvan::sleep(backoff.max(e.retry_after.unwrap_or_default()));
                    attempt += 1;
                }
                r => break r,
            }
        };
        match result {
            Ok(f) => {
                page.status = Some(f.status);
                page.bytes = f.bytes;
                if let Some(target) = &f.redirected {
                    // A redirect: its target counts as seen too.
                    self.seen.borrow_mut().insert(target.as_str().into());
                }
                let final_url = f.redirected.as_ref().unwrap_or(url);
                if f.is_html {
                    let mut found = std::mem::take(&mut *self.found.borrow_mut());
                    if let Err(e) = links::extract(final_url, &f.body, &mut found) {
                        page.error = Some(("parse", e));
                    }
                    page.links = found.len();
                    for link in found.drain(..) {
                        self.offer(link, depth + 1);
                    }
                    *self.found.borrow_mut() = found;
                }
                fetch::recycle(f.body);
            }
            Err(e) => {
                page.status = e.status;
                page.error = Some((e.kind, e.message));
            }
        }
        page.elapsed = started.elapsed();
        self.record(&page);
    }

    fn record(&self, page: &Page<'_>) {
        if let Err(e) = self.report.borrow_mut().page(page) {
            eprintln!("crawler: cannot write output: {e}");
            self.stop();
        }
    }

    fn stop(&self) {
        self.stopped.set(true);
        self.frontier.close();
    }
}

/// Decrements the pending count however a visit ends (return, panic,
/// kill, or killed before it started).
struct Pending(Rc<Crawl>);

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.done_one();
    }
}

/// Counts a running fetch greenlet for the in-flight figures.
struct InFlight(Rc<Crawl>);

impl InFlight {
    fn start(c: &Rc<Crawl>) -> InFlight {
        c.report.borrow_mut().started();
        InFlight(c.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.report.borrow_mut().finished();
    }
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("crawler: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> io::Result<()> {
    if args.concurrency == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "--concurrency must be at least 1",
        ));
    }
    let demo = if args.urls.is_empty() {
        Some(demo::start(
            args.demo_pages,
            Duration::from_millis(args.demo_slow_ms),
        )?)
    } else {
        None
    };
    let starts: Vec<Url> = match &demo {
        Some(site) => vec![Url::parse(&format!("http://{}/", site.addr)).expect("demo URL")],
        None => args
            .urls
            .iter()
            .map(|u| {
                Url::parse(u).map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidInput, format!("bad URL {u:?}: {e}"))
                })
            })
            .collect::<io::Result<_>>()?,
    };
    if let Some(site) = &demo {
        eprintln!(
            "demo site with {} pages at http://{}/",
            site.pages, site.addr
        );
    }
    let timeout =
        Duration::from_secs_f64(
            args.timeout
                .unwrap_or(if demo.is_some() { 1.0 } else { 10.0 }),
        );
    let limits = Limits {
        max_body: args.max_body,
        max_header: args.max_header,
        max_redirects: args.max_redirects,
        timeout,
    };
    let out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(BufWriter::with_capacity(64 << 10, File::create(p)?)),
        None if demo.is_some() && io::stdout().is_terminal() => {
            eprintln!("writing JSON lines to crawl.jsonl");
            Box::new(BufWriter::with_capacity(
                64 << 10,
                File::create("crawl.jsonl")?,
            ))
        }
        None => Box::new(BufWriter::with_capacity(64 << 10, io::stdout())),
    };
    let progress = !args.no_progress && io::stderr().is_terminal();
    let retries = args.retries.unwrap_or(if demo.is_some() { 1 } else { 2 });
    let crawl = Rc::new(Crawl {
        retries,
        agent: fetch::agent(&limits, &args.user_agent, args.concurrency),
        limits,
        report: RefCell::new(Report::new(out, progress)),
        seen: RefCell::new(HashSet::new()),
        hosts: {
            let mut hosts: Vec<String> = starts
                .iter()
                .filter_map(|u| u.host_str().map(str::to_owned))
                .collect();
            hosts.sort_unstable();
            hosts.dedup();
            hosts
        },
        robots: RefCell::new(HashMap::new()),
        frontier: Queue::unbounded(),
        found: RefCell::new(Vec::new()),
        pending: Cell::new(0),
        stopped: Cell::new(false),
        args,
    });
    for u in starts {
        crawl.offer(u, 0);
    }

    let pool = Rc::new(Pool::new(crawl.args.concurrency));
    // Ctrl-C: stop taking pages, kill the pool; main then flushes and
    // prints the summary.
    let interrupted = Rc::new(Cell::new(false));
    let (c, p, i) = (crawl.clone(), pool.clone(), interrupted.clone());
    let _sigint = sylvan::signal(libc::SIGINT, move || {
        i.set(true);
        c.stop();
        p.kill();
    })?;
    if progress {
        let c = crawl.clone();
        sylvan::spawn(move || {
            while !c.stopped.get() && c.pending.get() > 0 {
                sylvan::sleep(Duration::from_millis(200));
                c.report.borrow_mut().draw_progress();
            }
        });
    }

    while let Some((url, depth)) = crawl.frontier.get() {
        if crawl.stopped.get() {
            crawl.done_one();
            continue;
        }
        let c = crawl.clone();
        let guard = Pending(crawl.clone());
        // Shared with the panic report below rather than copied per page.
        let url = Rc::new(url);
        let shown = url.clone();
        let g = pool.spawn(move || {
            let _guard = guard;
            let _running = InFlight::start(&c);
            c.visit(&url, depth);
        });
        // A bug or a hostile page that makes the visit panic is counted and
        // reported; the crawl goes on.
        let c = crawl.clone();
        g.link_exception(move |e| {
            let page = Page {
                url: shown.as_str(),
                status: None,
                bytes: 0,
                links: 0,
                elapsed: Duration::ZERO,
                error: Some(("panic", e.to_string())),
            };
            c.record(&page);
        });
    }
    pool.join();
    let summary = crawl.report.borrow_mut().finish(interrupted.get())?;
    if let Some(path) = &crawl.args.stats {
        let r = crawl.report.borrow();
        let stats = serde_json::json!({
            "pages": r.pages(),
            "errors": r.errors(),
            "max_in_flight": r.max_in_flight,
            "interrupted": interrupted.get(),
            "summary": summary,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&stats)?)?;
    }
    drop(demo);
    Ok(())
}
