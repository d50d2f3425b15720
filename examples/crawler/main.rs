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

/// The crawler allocates per page (the response, the URLs it finds, the
/// JSON line) and frees most of it at once; mimalloc's thread-local free
/// lists do that in about half glibc's time (W5, README's Benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod demo;
mod fetch;
mod links;
mod report;
mod robots;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Parser;
use sylvan::pool::Pool;
use sylvan::sync::{AsyncResult, Queue};
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
    /// Fetch pages at most this many links from a start URL, by the
    /// shortest path (start URLs are depth 0; a redirect's target has its
    /// origin's depth).
    #[arg(long, default_value_t = 64)]
    max_depth: u32,
    /// Greenlets fetching at once (the Pool size).
    #[arg(short, long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds per page attempt (connect, request, body). Default 10, or 1
    /// on the demo site.
    #[arg(long, value_parser = parse_timeout)]
    timeout: Option<f64>,
    /// Retries of a transient failure (timeout, refused, reset, 5xx, 429).
    /// Default 2, or 1 on the demo site.
    #[arg(long)]
    retries: Option<u32>,
    /// Backoff before the first retry in ms; doubles each retry.
    #[arg(long, default_value_t = 200)]
    backoff_ms: u64,
    /// User-Agent header (also the robots.txt group we follow).
    #[arg(long, default_value = "sylvan-crawler/0.1", value_parser = parse_user_agent)]
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
    /// Redirects followed in a row from one page (each hop is checked as a
    /// link is: seen once, in scope, allowed by robots.txt).
    #[arg(long, default_value_t = 5)]
    max_redirects: u32,
    /// Ignore robots.txt. Without it, a site whose robots.txt is
    /// unreachable (5xx, 429, a network error, a redirect loop) is not
    /// crawled, each page reporting a `robots` error that says why (RFC
    /// 9309).
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

/// `--timeout`: seconds, more than zero and at most a day (a page attempt
/// longer than that is a hang, not a slow server).
fn parse_timeout(s: &str) -> Result<f64, String> {
    let secs: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if secs.is_finite() && secs > 0.0 && secs <= 86_400.0 {
        Ok(secs)
    } else {
        Err("must be a number of seconds above 0 and at most 86400".into())
    }
}

/// `--user-agent`: it goes into a header, so no control characters.
fn parse_user_agent(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("must not be empty".into());
    }
    match s.chars().find(|c| c.is_control()) {
        Some(c) => Err(format!("must not contain control characters (found {c:?})")),
        None => Ok(s.to_owned()),
    }
}

/// Creates `path` for writing; the error names it.
fn create(path: &Path) -> io::Result<File> {
    File::create(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display())))
}

/// The longest wait between two attempts at a page, however many retries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A start URL: http or https, with a host, normalized as links are.
fn parse_start(u: &str) -> io::Result<Url> {
    let bad =
        |why: String| io::Error::new(io::ErrorKind::InvalidInput, format!("bad URL {u:?}: {why}"));
    let url = Url::parse(u).map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(bad(
            "only http:// and https:// URLs with a host can be crawled (for example \
             http://localhost:8000/)"
                .into(),
        ));
    }
    // In the form links take (no fragment, percent-encodings normalized),
    // so that a link back to it is seen as the same page.
    Ok(links::page(url).expect("an http(s) URL is a page"))
}

/// The crawl's shared state (one hub, so `Rc` and `RefCell`).
struct Crawl {
    args: Args,
    retries: u32,
    limits: Limits,
    agents: fetch::Agents,
    report: RefCell<Report>,
    /// Every in-scope URL found, as text, to its entry in `known`.
    index: RefCell<HashMap<Box<str>, u32>>,
    known: RefCell<Vec<Known>>,
    /// URLs queued or reached by a redirect (what `--max-pages` counts).
    admitted: Cell<usize>,
    /// What is left of [`PATHS_BUDGET`].
    paths_left: Cell<usize>,
    /// The budget ran out: nothing more is kept.
    paths_full: Cell<bool>,
    /// The start URLs' hosts: a handful, so a list.
    hosts: Vec<String>,
    /// robots.txt rules by origin, set once fetched.
    robots: RefCell<HashMap<String, Rc<AsyncResult<Rc<Robots>>>>>,
    /// Pages to fetch, with their entry in `known`.
    frontier: Queue<(Url, u32)>,
    /// The links of the page being parsed, kept between pages: a fresh
    /// vector grows through sizes that glibc serves from its slower bins.
    found: RefCell<Vec<Url>>,
    /// Pages queued or being fetched; the frontier closes when it drops to 0.
    pending: Cell<usize>,
    stopped: Cell<bool>,
    /// Writing the JSON lines failed (reported once; the crawl stops).
    output_failed: Cell<bool>,
}

/// What the crawl knows of an in-scope URL.
///
/// `--max-depth` counts the shortest path from a start URL. Pages are
/// fetched concurrently, so the first path found to a page is not always
/// the shortest: a slow page may turn out to be a shorter way to a page
/// fetched already. Each fetched page therefore keeps the entries its links
/// and redirect lead to, and a shorter path found later shortens theirs too,
/// queueing the pages that were too deep before (each URL is still fetched
/// at most once). Four bytes per distinct in-scope link of each page, up
/// to [`PATHS_BUDGET`].
struct Known {
    /// Links from a start URL on the shortest path found so far (a
    /// redirect's target has its origin's depth).
    depth: u32,
    reach: Reach,
}

enum Reach {
    /// Found only deeper than `--max-depth`: not queued (yet).
    TooDeep(Url),
    /// Queued, being fetched, or fetched without links or redirect: its
    /// links are offered at the depth it has when they are found.
    Queued,
    /// Fetched: where its links lead (redirect targets marked [`HOP`]).
    Done(Box<[u32]>),
}

/// The memory kept for finding shorter paths (links and too-deep URLs):
/// 64 MiB holds 16 million links, 160 per page at the default
/// `--max-pages`, while a hostile site whose every page links to every
/// other cannot grow it further.
const PATHS_BUDGET: usize = 64 << 20;

/// Marks a redirect in [`Reach::Done`]: its target keeps the same depth.
const HOP: u32 = 1 << 31;

/// What [`Crawl::discover`] made of a URL.
enum Found {
    /// Out of scope, past `--max-pages`, or the crawl stopped.
    Refused,
    /// Known before (its depth shortened if this path is shorter), or too
    /// deep.
    Known(u32),
    /// New and admitted: the caller queues or follows it.
    New(u32),
}

impl Crawl {
    /// Looks `url`, found at `depth`, up among the URLs known, adding it if
    /// new.
    fn discover(&self, url: &Url, depth: u32) -> Found {
        if self.stopped.get() {
            return Found::Refused;
        }
        if !self.args.all_hosts
            && !url
                .host_str()
                .is_some_and(|h| self.hosts.iter().any(|s| s == h))
        {
            return Found::Refused;
        }
        // Most links point at pages known already: look up before copying
        // the URL for the index.
        let key = links::shown(url);
        let known = self.index.borrow().get(key.as_ref()).copied();
        if let Some(id) = known {
            self.shorten(id, depth);
            return Found::Known(id);
        }
        let too_deep = depth > self.args.max_depth;
        if too_deep && !self.spend(size_of::<Known>() + key.len()) {
            return Found::Refused;
        }
        let mut all = self.known.borrow_mut();
        // Ids fit in 31 bits (see `HOP`): past that, refuse.
        let Some(id) = u32::try_from(all.len()).ok().filter(|id| id & HOP == 0) else {
            return Found::Refused;
        };
        let reach = if too_deep {
            Reach::TooDeep(url.clone())
        } else if self.admit_page() {
            Reach::Queued
        } else {
            return Found::Refused;
        };
        all.push(Known { depth, reach });
        self.index.borrow_mut().insert(key.into(), id);
        if too_deep {
            Found::Known(id)
        } else {
            Found::New(id)
        }
    }

    /// Counts one more page against `--max-pages`; false when it is reached.
    fn admit_page(&self) -> bool {
        let n = self.admitted.get();
        if n >= self.args.max_pages {
            return false;
        }
        self.admitted.set(n + 1);
        true
    }

    /// Queues `url`, a link found at `depth`, unless known, too deep or
    /// refused; returns its entry.
    fn offer(&self, url: Url, depth: u32) -> Option<u32> {
        match self.discover(&url, depth) {
            Found::Refused => None,
            Found::Known(id) => Some(id),
            Found::New(id) => {
                self.enqueue(url, id);
                Some(id)
            }
        }
    }

    fn enqueue(&self, url: Url, id: u32) {
        self.pending.set(self.pending.get() + 1);
        if self.frontier.put((url, id)).is_err() {
            self.done_one();
        }
    }

    /// The depth of entry `id` now.
    fn depth(&self, id: u32) -> u32 {
        self.known.borrow()[id as usize].depth
    }

    /// Entry `id` was fetched: `to` are the entries its links (or redirect)
    /// lead to.
    fn fetched(&self, id: u32, mut to: Vec<u32>) {
        to.sort_unstable();
        to.dedup();
        if !to.is_empty() && self.spend(to.len() * size_of::<u32>()) {
            self.known.borrow_mut()[id as usize].reach = Reach::Done(to.into());
        }
    }

    /// Takes `bytes` from [`PATHS_BUDGET`]; false (said once) when it is
    /// spent.
    fn spend(&self, bytes: usize) -> bool {
        let left = self.paths_left.get();
        if !self.paths_full.get() && left >= bytes {
            self.paths_left.set(left - bytes);
            return true;
        }
        if !self.paths_full.replace(true) {
            eprintln!(
                "crawler: {} MiB of links kept for --max-depth; pages found from now on \
                 count the path by which they were first found",
                PATHS_BUDGET >> 20
            );
        }
        false
    }

    /// A path of `depth` links to entry `id` was found: when shorter than
    /// the one known, it becomes its depth, and the pages it leads to get
    /// shorter paths too; those that were too deep and no longer are get
    /// queued.
    fn shorten(&self, id: u32, depth: u32) {
        // The first entry is looked at before the work list is used: most
        // links found are to pages known by a path no longer than this
        // one, and those allocate nothing.
        let mut first = Some((id, depth));
        let mut work = Vec::new();
        let mut queue = Vec::new();
        {
            let mut all = self.known.borrow_mut();
            while let Some((id, depth)) = first.take().or_else(|| work.pop()) {
                let k = &mut all[id as usize];
                if depth >= k.depth {
                    continue;
                }
                k.depth = depth;
                match &k.reach {
                    Reach::TooDeep(_) if depth <= self.args.max_depth => {
                        if self.admit_page()
                            && let Reach::TooDeep(url) =
                                std::mem::replace(&mut k.reach, Reach::Queued)
                        {
                            queue.push((url, id));
                        }
                    }
                    Reach::TooDeep(_) | Reach::Queued => {}
                    Reach::Done(to) => work.extend(to.iter().map(|&t| {
                        if t & HOP != 0 {
                            (t & !HOP, depth)
                        } else {
                            (t, depth + 1)
                        }
                    })),
                }
            }
        }
        if self.stopped.get() {
            return;
        }
        for (url, id) in queue {
            self.enqueue(url, id);
        }
    }

    fn done_one(&self) {
        let n = self.pending.get() - 1;
        self.pending.set(n);
        if n == 0 {
            self.frontier.close();
        }
    }

    /// The robots.txt rules of `url`'s origin, fetched once per origin:
    /// greenlets that need them while the fetch runs wait for its result.
    fn robots_for(&self, url: &Url) -> Rc<Robots> {
        let origin = url.origin().ascii_serialization();
        let pending = self.robots.borrow().get(&origin).cloned();
        if let Some(slot) = pending {
            // Set by the greenlet fetching it, also when that greenlet
            // fails (see `Unreachable`), so this wait ends. `get` fails
            // only while this greenlet unwinds, when the page is not
            // reported: the rules it then gets are a fallback no output
            // shows.
            return slot.get().unwrap_or_else(|_| {
                Rc::new(Robots::disallow_all("robots.txt not fetched".to_owned()))
            });
        }
        let slot = Rc::new(AsyncResult::new());
        self.robots.borrow_mut().insert(origin, slot.clone());

        /// Sets the slot to "unreachable" if the fetch below never does
        /// (the greenlet killed or a bug panicking), so waiters go on.
        struct Unreachable(Rc<AsyncResult<Rc<Robots>>>);
        impl Drop for Unreachable {
            fn drop(&mut self) {
                if !self.0.is_ready() {
                    let _ = self.0.set(Rc::new(Robots::disallow_all(
                        "robots.txt not fetched: its fetch was cut short".to_owned(),
                    )));
                }
            }
        }
        let _unreachable = Unreachable(slot.clone());

        // RFC 9309 2.3.1: a robots.txt that is missing (4xx but 429) allows
        // everything; one that is unreachable (5xx, a network error, a
        // timeout) disallows everything. Only its first 512 KiB are read.
        // A page denied so says why the robots.txt was not had.
        let rules = match url.join("/robots.txt") {
            Ok(robots_url) => {
                // Retried as pages are: one reset must not close the site.
                let fetched =
                    self.with_retries(|| self.agents.with(|a| fetch::fetch_robots(a, &robots_url)));
                match fetched {
                    Ok(text) => Robots::parse(&text, &self.args.user_agent),
                    Err(e)
                        if e.status
                            .is_some_and(|s| (400..500).contains(&s) && s != 429) =>
                    {
                        Robots::default()
                    }
                    Err(e) => Robots::disallow_all(format!(
                        "robots.txt unreachable ({}: {}), so everything is disallowed",
                        e.kind, e.message
                    )),
                }
            }
            Err(_) => Robots::default(),
        };
        let rules = Rc::new(rules);
        let _ = slot.set(rules.clone());
        rules
    }

    /// Visits `url` and the redirects it leads to (each hop admitted as a
    /// link is: seen once, in scope, allowed by robots.txt).
    fn visit(&self, url: &Url, id: u32) {
        let Some((mut next, mut next_id)) = self.visit_one(url, id, &[]) else {
            return;
        };
        let mut chain = vec![url.clone()];
        while let Some((after, after_id)) = self.visit_one(&next, next_id, &chain) {
            chain.push(std::mem::replace(&mut next, after));
            next_id = after_id;
        }
    }

    /// Fetches one page, entry `id` (with retries), and queues its links.
    /// A redirect returns its target and entry when that is to be visited
    /// next; `chain` holds the pages whose redirects led here.
    fn visit_one(&self, url: &Url, id: u32, chain: &[Url]) -> Option<(Url, u32)> {
        let started = Instant::now();
        // A redirect's target (declared before `page`, which shows it).
        let target: Url;
        let shown_target;
        let shown_url = links::shown(url);
        let mut page = Page {
            url: &shown_url,
            status: None,
            bytes: 0,
            links: 0,
            elapsed: Duration::ZERO,
            redirect: None,
            error: None,
        };
        if !self.args.no_robots {
            let path = &url[url::Position::BeforePath..];
            let robots = self.robots_for(url);
            if !robots.allowed(path) {
                page.error = Some(robots.denial());
                page.elapsed = started.elapsed();
                self.record(&page);
                return None;
            }
        }
        let result = self.with_retries(|| self.agents.with(|a| fetch::fetch(a, url, &self.limits)));
        match result {
            // `fetch` succeeds with a 3xx only for a redirect.
            Ok(f) if (300..400).contains(&f.status) => {
                page.status = Some(f.status);
                page.bytes = f.bytes;
                fetch::recycle(f.body);
                match self.redirect_target(url, f.location.as_deref()) {
                    Ok(to) => {
                        target = to;
                        shown_target = links::shown(&target);
                        page.redirect = Some(&shown_target);
                        let refused = self.refuse_hop(url, &target, chain);
                        page.elapsed = started.elapsed();
                        let next = match refused {
                            Some(e) => {
                                page.error = Some(("redirect", e));
                                None
                            }
                            None => match self.discover(&target, self.depth(id)) {
                                Found::Refused => None,
                                Found::Known(to) => {
                                    self.fetched(id, vec![to | HOP]);
                                    // Pages reached by their own links
                                    // may close a loop no visit follows.
                                    if self.redirects_lead(to, id) {
                                        page.error = Some((
                                            "redirect",
                                            format!("redirect loop back to {shown_target}"),
                                        ));
                                    }
                                    None
                                }
                                Found::New(to) => {
                                    self.fetched(id, vec![to | HOP]);
                                    Some(to)
                                }
                            },
                        };
                        self.record(&page);
                        return next.map(|to| (target, to));
                    }
                    Err(e) => page.error = Some(("redirect", e)),
                }
            }
            Ok(f) => {
                page.status = Some(f.status);
                page.bytes = f.bytes;
                if f.is_html {
                    let mut found = std::mem::take(&mut *self.found.borrow_mut());
                    if let Err(e) = links::extract(url, &f.body, f.encoding, &mut found) {
                        page.error = Some(("parse", e));
                    }
                    page.links = found.len();
                    // Read now: a shorter path may have been found while
                    // the page was fetched.
                    let depth = self.depth(id) + 1;
                    let to = found
                        .drain(..)
                        .filter_map(|link| self.offer(link, depth))
                        .collect();
                    self.fetched(id, to);
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
        None
    }

    /// Runs `fetch` under the page timeout, retrying transient failures
    /// (`--retries`, with backoff). A first connection reset or early close
    /// is retried at once, outside that count: it is usually a kept-alive
    /// connection the server closed as the request went out, and the retry
    /// takes a new one (as browsers do).
    fn with_retries<T>(&self, fetch: impl Fn() -> Result<T, FetchError>) -> Result<T, FetchError> {
        let mut attempt = 0;
        let mut stale_retried = false;
        loop {
            let r = sylvan::with_timeout(self.limits.timeout, &fetch).unwrap_or_else(|_| {
                Err(FetchError::new(
                    "timeout",
                    format!("no answer within {:?}", self.limits.timeout),
                    true,
                ))
            });
            match r {
                Err(e) if e.kind == "reset" && !stale_retried => stale_retried = true,
                Err(e) if e.transient && attempt < self.retries => {
                    // A server's Retry-After (capped at a minute) wins when
                    // longer.
                    let backoff = self.backoff(attempt);
                    sylvan::sleep(backoff.max(e.retry_after.unwrap_or_default()));
                    attempt += 1;
                }
                r => break r,
            }
        }
    }

    /// The wait before retry `attempt + 1`: `--backoff-ms`, doubled each
    /// retry, at most [`MAX_BACKOFF`].
    fn backoff(&self, attempt: u32) -> Duration {
        let ms = self
            .args
            .backoff_ms
            .saturating_mul(1u64.checked_shl(attempt).unwrap_or(u64::MAX));
        Duration::from_millis(ms).min(MAX_BACKOFF)
    }

    /// Where the redirect of `from` points, or why it points nowhere (no
    /// `Location`, or one that is no URL).
    fn redirect_target(&self, from: &Url, location: Option<&str>) -> Result<Url, String> {
        let location = location.ok_or("a redirect without a Location")?;
        let to = from
            .join(location)
            .map_err(|e| format!("bad Location {location:?}: {e}"))?;
        // As a link: http(s) only, without its fragment.
        links::page(to).ok_or_else(|| format!("a redirect to {location:?}, not an http(s) page"))
    }

    /// Whether the redirects fetched so far lead from entry `from` to entry
    /// `to` (each redirect page keeps its one hop in [`Reach::Done`]).
    fn redirects_lead(&self, from: u32, to: u32) -> bool {
        let all = self.known.borrow();
        let mut at = from;
        // Bounded: a loop that does not pass `to` was closed (and reported)
        // before.
        for _ in 0..all.len() {
            if at == to {
                return true;
            }
            match &all[at as usize].reach {
                Reach::Done(next) if next.len() == 1 && next[0] & HOP != 0 => at = next[0] & !HOP,
                _ => return false,
            }
        }
        false
    }

    /// Why the hop from `from` (which `chain` led to) to `to` is not taken:
    /// a loop, or more than `--max-redirects` hops in a row.
    fn refuse_hop(&self, from: &Url, to: &Url, chain: &[Url]) -> Option<String> {
        if to == from || chain.contains(to) {
            return Some(format!("redirect loop back to {to}"));
        }
        let max = self.limits.max_redirects;
        (chain.len() >= max as usize).then(|| format!("more than {max} redirects in a row"))
    }

    fn record(&self, page: &Page<'_>) {
        if self.output_failed.get() {
            return;
        }
        let written = self.report.borrow_mut().page(page);
        if let Err(e) = written {
            self.output_error(e);
        }
    }

    /// Writing the JSON lines failed: said once (the pages still in flight
    /// would each say it again), and the crawl stops.
    fn output_error(&self, e: io::Error) {
        if !self.output_failed.replace(true) {
            eprintln!("crawler: cannot write output: {e}; stopping");
        }
        self.stop();
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
    match run(args) {
        Ok(Finished::Complete) => {}
        // As a shell reports a process that SIGINT ended, so scripts can
        // tell an interrupted crawl from a complete one.
        Ok(Finished::Interrupted) => std::process::exit(128 + libc::SIGINT),
        // Said when it happened; the summary followed.
        Ok(Finished::OutputFailed) => std::process::exit(1),
        Err(e) => {
            eprintln!("crawler: {e}");
            std::process::exit(1);
        }
    }
}

/// How a crawl ended.
enum Finished {
    Complete,
    /// Stopped by Ctrl-C: what was fetched is written and summarized.
    Interrupted,
    /// Stopped because the JSON lines could not be written (a closed pipe,
    /// a full disk): the pages before are summarized.
    OutputFailed,
}

fn run(args: Args) -> io::Result<Finished> {
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
            .map(|u| parse_start(u))
            .collect::<io::Result<_>>()?,
    };
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
    // Opened before the crawl, so that a bad path fails at once.
    let mut stats_file = args.stats.as_deref().map(create).transpose()?;
    let mut to_file_note = false;
    let out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(BufWriter::with_capacity(64 << 10, create(p)?)),
        None if demo.is_some() && io::stdout().is_terminal() => {
            to_file_note = true;
            Box::new(BufWriter::with_capacity(
                64 << 10,
                create(Path::new("crawl.jsonl"))?,
            ))
        }
        None => Box::new(BufWriter::with_capacity(64 << 10, io::stdout())),
    };
    let progress = !args.no_progress && io::stderr().is_terminal();
    let retries = args.retries.unwrap_or(if demo.is_some() { 1 } else { 2 });
    let crawl = Rc::new(Crawl {
        retries,
        agents: fetch::Agents::new(&limits, &args.user_agent, args.concurrency),
        limits,
        report: RefCell::new(Report::new(out, progress)),
        index: RefCell::new(HashMap::new()),
        known: RefCell::new(Vec::new()),
        admitted: Cell::new(0),
        paths_left: Cell::new(PATHS_BUDGET),
        paths_full: Cell::new(false),
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
        output_failed: Cell::new(false),
        args,
    });
    for u in starts {
        crawl.offer(u, 0);
    }
    if crawl.pending.get() == 0 {
        // Nothing admitted (--max-pages 0): nothing will close it.
        crawl.frontier.close();
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
    // Printed once Ctrl-C is handled (a test waits for these lines).
    if let Some(site) = &demo {
        eprintln!(
            "demo site with {} pages at http://{}/",
            site.pages, site.addr
        );
    }
    if to_file_note {
        eprintln!("writing JSON lines to crawl.jsonl");
    }
    if progress {
        let c = crawl.clone();
        sylvan::spawn(move || {
            while !c.stopped.get() && c.pending.get() > 0 {
                sylvan::sleep(Duration::from_millis(200));
                c.report.borrow_mut().draw_progress();
            }
        });
    }

    while let Some((url, id)) = crawl.frontier.get() {
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
            // Ctrl-C kills the pool, and a slot that frees hands itself to
            // this spawn, parked for it, which may complete after the
            // kill's last look (as in gevent, a greenlet spawned then
            // lives): the crawl is over, fetch nothing.
            if c.stopped.get() {
                return;
            }
            let _running = InFlight::start(&c);
            c.visit(&url, id);
        });
        // A bug or a hostile page that makes the visit panic is counted and
        // reported; the crawl goes on.
        let c = crawl.clone();
        g.link_exception(move |e| {
            let shown = links::shown(&shown);
            let page = Page {
                url: &shown,
                status: None,
                bytes: 0,
                links: 0,
                elapsed: Duration::ZERO,
                redirect: None,
                error: Some(("panic", e.to_string())),
            };
            c.record(&page);
        });
    }
    pool.join();
    // Link callbacks of the last visits (a panic's report) were spawned
    // as those greenlets died: let them run before the summary.
    sylvan::idle();
    // A failure (the reader went away, the disk is full) is said once; the
    // summary still goes to stderr.
    let flushed = crawl.report.borrow_mut().flush();
    if let Err(e) = flushed {
        crawl.output_error(e);
    }
    let summary = crawl.report.borrow_mut().summary(interrupted.get());
    if let Some(file) = &mut stats_file {
        let r = crawl.report.borrow();
        let stats = serde_json::json!({
            "pages": r.pages(),
            "errors": r.errors(),
            "max_in_flight": r.max_in_flight,
            "interrupted": interrupted.get(),
            "summary": summary,
        });
        file.write_all(&serde_json::to_vec_pretty(&stats)?)?;
    }
    drop(demo);
    Ok(if interrupted.get() {
        Finished::Interrupted
    } else if crawl.output_failed.get() {
        Finished::OutputFailed
    } else {
        Finished::Complete
    })
}
