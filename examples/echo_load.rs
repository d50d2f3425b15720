//! A load generator for echo servers (benchmark W4): C connections, each
//! writing 64 bytes and reading the 64-byte echo in a loop for a fixed
//! time; prints round trips per second and latency percentiles. Runs on
//! sylvan itself: one greenlet per connection, all on one thread.
//!
//! ```sh
//! cargo run --release --example echo_load -- 127.0.0.1:7000 --conns 50 --secs 5 \
//!     [--server-pid PID] [--pin CPU]
//! ```
//!
//! With `--server-pid`, it also reads the server's CPU time (user + system,
//! from `/proc/PID/stat`) at the start and end of the measured window and
//! prints the server's CPU time per round trip. `--pin CPU` pins the load
//! generator to one CPU (the server should be pinned to another).

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sylvan::net::TcpStream;

/// Bytes per message.
pub const MSG: usize = 64;

/// What one load run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Connections held.
    pub conns: usize,
    /// Round trips completed in the window.
    pub round_trips: u64,
    /// The window's length.
    pub secs: f64,
    /// Latency percentiles, in microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, in microseconds.
    pub p99_us: f64,
    /// Server CPU time (user + system) during the window, when its pid was
    /// given.
    pub server_cpu: Option<Duration>,
}

impl Report {
    /// Round trips per second.
    pub fn rate(&self) -> f64 {
        self.round_trips as f64 / self.secs
    }

    /// Server CPU nanoseconds per round trip.
    pub fn cpu_ns_per_rt(&self) -> Option<f64> {
        self.server_cpu
            .map(|c| c.as_nanos() as f64 / self.round_trips.max(1) as f64)
    }

    /// One machine-readable line (for the bench that runs this as a child).
    pub fn to_line(&self) -> String {
        format!(
            "RESULT conns={} rt={} secs={:.6} p50_us={:.1} p99_us={:.1} cpu_ns={}",
            self.conns,
            self.round_trips,
            self.secs,
            self.p50_us,
            self.p99_us,
            self.server_cpu.map_or(-1, |c| c.as_nanos() as i128)
        )
    }

    /// Parses [`to_line`](Self::to_line).
    pub fn from_line(line: &str) -> Option<Report> {
        let rest = line.strip_prefix("RESULT ")?;
        let get = |k: &str| -> Option<&str> {
            rest.split(' ')
                .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
        };
        let cpu: i128 = get("cpu_ns")?.parse().ok()?;
        Some(Report {
            conns: get("conns")?.parse().ok()?,
            round_trips: get("rt")?.parse().ok()?,
            secs: get("secs")?.parse().ok()?,
            p50_us: get("p50_us")?.parse().ok()?,
            p99_us: get("p99_us")?.parse().ok()?,
            server_cpu: (cpu >= 0).then(|| Duration::from_nanos(cpu as u64)),
        })
    }
}

/// Latencies at 1 µs resolution up to 1 s.
struct Histogram {
    buckets: Vec<u32>,
    count: u64,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            buckets: vec![0; 1_000_001],
            count: 0,
        }
    }

    fn record(&mut self, d: Duration) {
        let us = (d.as_micros() as usize).min(self.buckets.len() - 1);
        self.buckets[us] += 1;
        self.count += 1;
    }

    fn percentile(&self, p: f64) -> f64 {
        let want = ((self.count as f64) * p).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (us, &n) in self.buckets.iter().enumerate() {
            seen += n as u64;
            if seen >= want {
                return us as f64;
            }
        }
        f64::NAN
    }
}

/// CPU time (user + system) of process `pid` so far, from `/proc`.
pub fn process_cpu(pid: u32) -> io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat
        .rsplit_once(')')
        .ok_or_else(|| io::Error::other("bad /proc stat"))?
        .1;
    let f: Vec<&str> = after.split_whitespace().collect();
    // fields 14 and 15 (utime, stime), counted from 1 with the state as 3
    let ticks: u64 = f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_nanos(ticks * 1_000_000_000 / hz))
}

/// Pins the calling thread to `cpu`.
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes one bit inside `set`; it checks `cpu` against
    // the set's size.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size given; 0 is this thread.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Raises the open-file soft limit to the hard one.
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Connects `conns` clients to `addr`, then runs round trips on all of them
/// for `secs` and reports.
pub fn run(
    addr: SocketAddr,
    conns: usize,
    secs: f64,
    server_pid: Option<u32>,
) -> io::Result<Report> {
    raise_fd_limit();
    let mut streams = Vec::with_capacity(conns);
    for _ in 0..conns {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        streams.push(s);
    }
    // Everyone starts together, a moment after the last connect.
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + Duration::from_secs_f64(secs);
    let hist = Rc::new(RefCell::new(Histogram::new()));
    let clients: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            let hist = hist.clone();
            sylvan::spawn(move || -> io::Result<()> {
                let msg = [i as u8; MSG];
                let mut back = [0u8; MSG];
                sylvan::sleep_until(start);
                loop {
                    let t0 = Instant::now();
                    if t0 >= end {
                        return Ok(());
                    }
                    s.write_all(&msg)?;
                    s.read_exact(&mut back)?;
                    hist.borrow_mut().record(t0.elapsed());
                }
            })
        })
        .collect();
    sylvan::sleep_until(start);
    let cpu0 = server_pid.map(process_cpu).transpose()?;
    sylvan::sleep_until(end);
    let cpu1 = server_pid.map(process_cpu).transpose()?;
    let measured = start.elapsed().as_secs_f64();
    for g in clients {
        g.join()
            .map_err(|e| io::Error::other(format!("client: {e}")))??;
    }
    let h = hist.borrow();
    Ok(Report {
        conns,
        round_trips: h.count,
        secs: measured,
        p50_us: h.percentile(0.50),
        p99_us: h.percentile(0.99),
        server_cpu: cpu0.zip(cpu1).map(|(a, b)| b.saturating_sub(a)),
    })
}

const USAGE: &str = "usage: echo_load ADDR [--conns N] [--secs S] [--server-pid PID] [--pin CPU]";

fn main() {
    // Bad arguments and failures print as a message and the usage, not as
    // `main`'s `Debug` of the error.
    if let Err(e) = load() {
        eprintln!("echo_load: {e}");
        if e.kind() == io::ErrorKind::InvalidInput {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
        std::process::exit(1);
    }
}

fn load() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut addr = None;
    let (mut conns, mut secs, mut pid, mut pin) = (50usize, 5.0f64, None, None);
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_owned());
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or_else(|| bad(&format!("{name}: missing")));
        match a.as_str() {
            "--conns" => {
                conns = val("--conns N")?
                    .parse()
                    .ok()
                    .filter(|&n: &usize| n > 0)
                    .ok_or_else(|| bad("--conns N: a number of connections, at least 1"))?
            }
            "--secs" => {
                secs = val("--secs S")?
                    .parse()
                    .ok()
                    .filter(|&s: &f64| s > 0.0 && Duration::try_from_secs_f64(s).is_ok())
                    .ok_or_else(|| bad("--secs S: a positive, finite number of seconds"))?
            }
            "--server-pid" => pid = Some(val("--server-pid PID")?.parse().map_err(|_| bad("PID"))?),
            "--pin" => pin = Some(val("--pin CPU")?.parse().map_err(|_| bad("--pin CPU"))?),
            _ => {
                let parsed = a.parse::<SocketAddr>();
                addr = Some(parsed.map_err(|_| bad(&format!("not an ADDR (ip:port): {a}")))?)
            }
        }
    }
    let addr = addr.ok_or_else(|| bad("no ADDR given"))?;
    if let Some(cpu) = pin {
        pin_to_cpu(cpu)?;
    }
    let r = run(addr, conns, secs, pid)?;
    println!("{}", r.to_line());
    println!("round trips/s: {:.0}", r.rate());
    println!("latency p50: {:.0} µs, p99: {:.0} µs", r.p50_us, r.p99_us);
    if let Some(ns) = r.cpu_ns_per_rt() {
        println!("server CPU: {ns:.0} ns/round-trip");
    }
    Ok(())
}
