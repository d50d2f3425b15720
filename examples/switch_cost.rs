//! What one switch costs: two OS processes, two OS threads, two greenlets
//! through the hub (W1) and a raw greenlet switch (W1r), measured in one run.
//!
//! `cargo run --release --example switch_cost`
//!
//! Processes and threads ping-pong one byte over a pair of pipes: each round
//! trip is two switches (each side blocks in `read` until the other writes).
//! Greenlets ping-pong through the hub with `yield_now`; the raw row resumes
//! and suspends one greenlet core with no scheduler at all.

use std::hint::black_box;
use std::time::Instant;

fn pipe() -> (i32, i32) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid two-element out array for pipe(2).
    let r = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(r, 0, "pipe: {}", std::io::Error::last_os_error());
    (fds[0], fds[1])
}

fn write_byte(fd: i32) {
    let b = 1u8;
    // SAFETY: writes one byte from a valid local.
    let n = unsafe { libc::write(fd, (&b as *const u8).cast(), 1) };
    assert_eq!(n, 1, "write: {}", std::io::Error::last_os_error());
}

fn read_byte(fd: i32) {
    let mut b = 0u8;
    // SAFETY: reads one byte into a valid local.
    let n = unsafe { libc::read(fd, (&mut b as *mut u8).cast(), 1) };
    assert_eq!(n, 1, "read: {}", std::io::Error::last_os_error());
}

/// The pong side: echo `rounds` bytes from `rx` to `tx`.
fn pong(rx: i32, tx: i32, rounds: u64) {
    for _ in 0..rounds {
        read_byte(rx);
        write_byte(tx);
    }
}

/// ns per switch between two OS processes.
fn processes(rounds: u64) -> f64 {
    let (a_rx, a_tx) = pipe();
    let (b_rx, b_tx) = pipe();
    // SAFETY: the child only runs the async-signal-safe pong loop (read,
    // write) and then `_exit`s; it touches no locks or allocator.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        pong(a_rx, b_tx, rounds);
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    let t = Instant::now();
    for _ in 0..rounds {
        write_byte(a_tx);
        read_byte(b_rx);
    }
    let e = t.elapsed();
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    for fd in [a_rx, a_tx, b_rx, b_tx] {
        // SAFETY: closes descriptors this function opened.
        unsafe { libc::close(fd) };
    }
    e.as_nanos() as f64 / (2 * rounds) as f64
}

/// ns per switch between two OS threads.
fn threads(rounds: u64) -> f64 {
    let (a_rx, a_tx) = pipe();
    let (b_rx, b_tx) = pipe();
    let peer = std::thread::spawn(move || pong(a_rx, b_tx, rounds));
    let t = Instant::now();
    for _ in 0..rounds {
        write_byte(a_tx);
        read_byte(b_rx);
    }
    let e = t.elapsed();
    peer.join().unwrap();
    for fd in [a_rx, a_tx, b_rx, b_tx] {
        // SAFETY: closes descriptors this function opened.
        unsafe { libc::close(fd) };
    }
    e.as_nanos() as f64 / (2 * rounds) as f64
}

/// ns per switch between two greenlets through the hub (W1).
fn greenlets(yields: u64) -> f64 {
    let body = move || {
        for _ in 0..yields {
            sylvan::yield_now();
        }
    };
    let a = sylvan::spawn(body);
    let b = sylvan::spawn(body);
    let t = Instant::now();
    a.join().unwrap();
    b.join().unwrap();
    t.elapsed().as_nanos() as f64 / (2 * yields) as f64
}

/// ns per raw resume + suspend of one greenlet core (W1r), no hub.
fn raw(rounds: u64) -> f64 {
    let mut pool = sylvan::runtime::stack::StackPool::new(1);
    let stack = pool.get(sylvan::DEFAULT_STACK_SIZE).expect("map a stack");
    let core = Box::new(sylvan::runtime::Core::new());
    let p: *const sylvan::runtime::Core = &*core;
    let body = move || {
        loop {
            // SAFETY: the body runs on the core's own stack.
            unsafe { (*p).suspend() };
        }
    };
    // SAFETY: `core` is boxed (a stable address) and outlives its body:
    // dropping the record force-unwinds the body.
    unsafe { core.start(stack, body) };
    let t = Instant::now();
    for _ in 0..rounds {
        // SAFETY: called from the thread's own stack.
        black_box(unsafe { core.resume() });
    }
    t.elapsed().as_nanos() as f64 / rounds as f64
}

/// Median of five runs of `f`.
fn median(f: impl Fn() -> f64) -> f64 {
    let mut v: Vec<f64> = (0..5).map(|_| f()).collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[2]
}

fn main() {
    let start = Instant::now();
    let rows = [
        (
            "two OS processes (pipe ping-pong)",
            median(|| processes(20_000)),
        ),
        (
            "two OS threads (pipe ping-pong)",
            median(|| threads(20_000)),
        ),
        (
            "two sylvan greenlets through the hub (W1)",
            median(|| greenlets(1_000_000)),
        ),
        (
            "raw greenlet switch, resume + suspend (W1r)",
            median(|| raw(5_000_000)),
        ),
    ];
    let greenlet = rows[2].1;
    println!(
        "{:<46} {:>10} {:>12}",
        "one switch between", "ns", "x greenlet"
    );
    for (name, ns) in rows {
        println!("{name:<46} {ns:>10.1} {:>12.2}", ns / greenlet);
    }
    println!(
        "(median of 5 runs each; measured in {:.1?})",
        start.elapsed()
    );
}
