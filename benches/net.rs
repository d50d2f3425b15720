//! W4 (echo) and W7 (blocking offload) of BENCHMARKS.md.
//!
//! `cargo bench --bench net`
//!
//! W4: the echo server of `examples/echo_server.rs` runs in a child process
//! pinned to CPU 0; the load generator of `examples/echo_load.rs` runs in
//! another child pinned to CPU 1, holding C = 50, then C = 1,000
//! connections that each write 64 bytes and read the echo in a loop. The
//! baseline (`B` lines) is a plain edge-triggered mio echo server with the
//! same buffer size that reads and writes until `WouldBlock`, measured under
//! the same load in the same run; the two alternate, and each figure is the
//! median of the rounds. The server's CPU time comes from `/proc/PID/stat`.
//!
//! W7: 1,000 greenlets make 10,000 calls of `std::thread::sleep(100 µs)`
//! through `spawn_blocking` on the default pool while a ticker greenlet
//! sleeps 1 ms in a loop and records its largest gap.
//!
//! Environment: `SYLVAN_W4_SECS` (default 2) seconds per run,
//! `SYLVAN_BENCH_ROUNDS` (default 3) runs per configuration,
//! `SYLVAN_W7_THREADS` to try another pool size than the default.

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

#[path = "../examples/echo_load.rs"]
#[allow(dead_code)]
mod echo_load;
#[path = "../examples/echo_server.rs"]
#[allow(dead_code)]
mod echo_server;

use echo_load::Report;

const ROLE: &str = "SYLVAN_W4_ROLE";
const SERVER_CPU: usize = 0;
const LOAD_CPU: usize = 1;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn pin(cpu: usize) {
    if cpus() > cpu {
        echo_load::pin_to_cpu(cpu).expect("sched_setaffinity");
    }
}

// ----- the mio baseline ----------------------------------------------------

/// A plain mio echo server: edge-triggered, one 4 KiB buffer, reads and
/// writes until `WouldBlock`; bytes the socket would not take wait for the
/// next writable edge.
fn mio_server() -> io::Result<()> {
    use mio::net::{TcpListener, TcpStream};
    use mio::{Events, Interest, Poll, Token};
    use std::os::fd::AsRawFd;

    struct Conn {
        s: TcpStream,
        pending: Vec<u8>,
    }
    const LISTENER: Token = Token(usize::MAX);

    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut listener = TcpListener::bind("127.0.0.1:0".parse().unwrap())?;
    // SAFETY: listen() on an open listening socket only raises its backlog
    // (to sylvan's 1024).
    unsafe { libc::listen(listener.as_raw_fd(), 1024) };
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("ADDR {}", listener.local_addr()?);
    io::stdout().flush()?;
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut buf = [0u8; echo_server::BUF];
    loop {
        poll.poll(&mut events, None)?;
        for ev in events.iter() {
            if ev.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut s, _)) => {
                            s.set_nodelay(true)?;
                            let i = free.pop().unwrap_or_else(|| {
                                conns.push(None);
                                conns.len() - 1
                            });
                            poll.registry().register(
                                &mut s,
                                Token(i),
                                Interest::READABLE | Interest::WRITABLE,
                            )?;
                            conns[i] = Some(Conn {
                                s,
                                pending: Vec::new(),
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
                continue;
            }
            let i = ev.token().0;
            let Some(c) = conns[i].as_mut() else { continue };
            let mut close = false;
            // flush what an earlier write left
            while !c.pending.is_empty() {
                match c.s.write(&c.pending) {
                    Ok(n) => {
                        c.pending.drain(..n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        close = true;
                        break;
                    }
                }
            }
            while !close && c.pending.is_empty() {
                match c.s.read(&mut buf) {
                    Ok(0) => close = true,
                    Ok(n) => {
                        let mut off = 0;
                        while off < n {
                            match c.s.write(&buf[off..n]) {
                                Ok(m) => off += m,
                                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                    c.pending.extend_from_slice(&buf[off..n]);
                                    break;
                                }
                                Err(_) => {
                                    close = true;
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => close = true,
                }
            }
            if close {
                let mut c = conns[i].take().unwrap();
                let _ = poll.registry().deregister(&mut c.s);
                free.push(i);
            }
        }
    }
}

// ----- the sylvan server and the load, as child roles -----------------------

fn sylvan_server() -> io::Result<()> {
    let server = echo_server::server("127.0.0.1:0")?;
    println!("ADDR {}", server.local_addr()?);
    io::stdout().flush()?;
    server.serve_forever()
}

fn load() -> io::Result<()> {
    let addr: SocketAddr = std::env::var("SYLVAN_W4_ADDR").unwrap().parse().unwrap();
    let conns = env_or("SYLVAN_W4_CONNS", 50usize);
    let secs = env_or("SYLVAN_W4_SECS", 2.0f64);
    let pid = std::env::var("SYLVAN_W4_SERVER_PID")
        .ok()
        .and_then(|p| p.parse().ok());
    let r = echo_load::run(addr, conns, secs, pid)?;
    println!("{}", r.to_line());
    Ok(())
}

/// Kills the child when dropped.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn child(role: &str, env: &[(&str, String)]) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.env(ROLE, role);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// One W4 run: start `server_role`, load it with `conns` connections.
fn w4_run(server_role: &str, conns: usize, secs: f64) -> Report {
    let mut server = Reaper(
        child(server_role, &[])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the server"),
    );
    let mut first = String::new();
    BufReader::new(server.0.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .strip_prefix("ADDR ")
        .unwrap_or_else(|| panic!("server said {first:?}"))
        .to_owned();
    let out = child(
        "load",
        &[
            ("SYLVAN_W4_ADDR", addr),
            ("SYLVAN_W4_CONNS", conns.to_string()),
            ("SYLVAN_W4_SECS", secs.to_string()),
            ("SYLVAN_W4_SERVER_PID", server.0.id().to_string()),
        ],
    )
    .stderr(Stdio::inherit())
    .output()
    .expect("run the load");
    let mut text = String::new();
    out.stdout.as_slice().read_to_string(&mut text).unwrap();
    assert!(out.status.success(), "load failed: {text}");
    drop(server);
    text.lines()
        .find_map(Report::from_line)
        .unwrap_or_else(|| panic!("no result from the load: {text}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn w4() {
    let secs = env_or("SYLVAN_W4_SECS", 2.0f64);
    let rounds = env_or("SYLVAN_BENCH_ROUNDS", 3usize).max(1);
    if cpus() < 2 {
        println!("# W4: fewer than 2 CPUs: server and load are not pinned apart");
    }
    for conns in [50usize, 1_000] {
        let mut runs: [Vec<Report>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..rounds {
            runs[0].push(w4_run("sylvan-server", conns, secs));
            runs[1].push(w4_run("mio-server", conns, secs));
        }
        let mut cpu = [0.0; 2];
        for (k, (id, label)) in [("W4", "echo"), ("B", "mio echo")].iter().enumerate() {
            let rs = &runs[k];
            let rate = median(rs.iter().map(Report::rate).collect());
            let p99 = median(rs.iter().map(|r| r.p99_us).collect());
            cpu[k] = median(rs.iter().filter_map(Report::cpu_ns_per_rt).collect());
            println!("{id} {label} c={conns}: {rate:.0} round-trips/s");
            println!("{id} {label} c={conns} p99: {p99:.0} µs");
            println!(
                "{id} {label} c={conns} server CPU: {:.0} ns/round-trip",
                cpu[k]
            );
        }
        println!(
            "W4 echo c={conns} server CPU vs mio: {:.3} ratio",
            cpu[0] / cpu[1]
        );
    }
}

// ----- W7 --------------------------------------------------------------------

/// One W7 run: (calls per second, the ticker's largest gap).
fn w7_run() -> (f64, Duration) {
    const GREENLETS: usize = 1_000;
    const CALLS: usize = 10_000;
    let stop = Rc::new(Cell::new(false));
    let s = stop.clone();
    let ticker = sylvan::spawn(move || {
        let mut max_gap = Duration::ZERO;
        let mut last = Instant::now();
        while !s.get() {
            sylvan::sleep(Duration::from_millis(1));
            let now = Instant::now();
            max_gap = max_gap.max(now - last);
            last = now;
        }
        max_gap
    });
    sylvan::yield_now();
    let t = Instant::now();
    let workers: Vec<_> = (0..GREENLETS)
        .map(|_| {
            sylvan::spawn(|| {
                for _ in 0..CALLS / GREENLETS {
                    sylvan::spawn_blocking(|| std::thread::sleep(Duration::from_micros(100)));
                }
            })
        })
        .collect();
    if std::env::var_os("SYLVAN_W7_VERBOSE").is_some() {
        println!("# W7 spawned {GREENLETS} greenlets in {:?}", t.elapsed());
    }
    for w in workers {
        w.join().unwrap();
    }
    let elapsed = t.elapsed();
    stop.set(true);
    let gap = ticker.join().unwrap();
    (CALLS as f64 / elapsed.as_secs_f64(), gap)
}

fn w7() {
    let rounds = env_or("SYLVAN_BENCH_ROUNDS", 3usize).max(1);
    if let Some(n) = std::env::var("SYLVAN_W7_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        sylvan::set_blocking_threads(n);
    }
    let threads = sylvan::blocking_threads();
    // The first run maps 1,000 fresh stacks (about 9 ms of main's time
    // here) and starts the pool's threads: reported on its own line; the
    // figures are the median of the warmed runs after it.
    let (cold_rate, cold_gap) = w7_run();
    let mut rates = Vec::new();
    let mut gaps = Vec::new();
    for _ in 0..rounds {
        let (rate, gap) = w7_run();
        if std::env::var_os("SYLVAN_W7_VERBOSE").is_some() {
            println!("# W7 run: {rate:.0} calls/s, ticker max gap {gap:?}");
        }
        rates.push(rate);
        gaps.push(gap.as_secs_f64() * 1e3);
    }
    let worst = gaps.iter().cloned().fold(0.0, f64::max);
    println!(
        "W7 blocking offload ({threads} threads): {:.0} calls/s",
        median(rates)
    );
    println!(
        "W7 ticker max gap ({threads} threads): {:.2} ms",
        median(gaps)
    );
    println!("W7 ticker max gap, worst warmed run ({threads} threads): {worst:.2} ms");
    println!("W7 blocking offload, cold first run ({threads} threads): {cold_rate:.0} calls/s");
    println!(
        "W7 ticker max gap, cold first run ({threads} threads): {:.2} ms",
        cold_gap.as_secs_f64() * 1e3
    );
    // What the blocking function itself costs here, on a plain thread.
    let n = 2_000;
    let t = Instant::now();
    for _ in 0..n {
        std::thread::sleep(Duration::from_micros(100));
    }
    println!(
        "B thread::sleep(100 µs) on a plain thread: {:.1} µs/call",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}

fn main() {
    match std::env::var(ROLE).as_deref() {
        Ok("sylvan-server") => {
            pin(SERVER_CPU);
            sylvan_server().unwrap();
        }
        Ok("mio-server") => {
            pin(SERVER_CPU);
            mio_server().unwrap();
        }
        Ok("load") => {
            pin(LOAD_CPU);
            load().unwrap();
        }
        Ok(other) => panic!("unknown {ROLE}={other}"),
        Err(_) => {
            let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
            let want = |w: &str| only.as_deref().is_none_or(|o| w.contains(o));
            if want("W7") {
                w7();
            }
            if want("W4") {
                w4();
            }
        }
    }
}
