//! A hung crawl, diagnosed: one worker blocks the hub on purpose (a
//! `std::thread::sleep`, standing in for a blocking C call or a CPU loop),
//! the blocking detector reports which greenlet and where it was spawned,
//! and `sylvan::dump()` shows what every other greenlet is waiting on.
//!
//! `cargo run --release --example hung_crawl`
//!
//! In a real process, hook the dump to a signal and ask it with
//! `kill -USR1 <pid>`:
//! `let _h = sylvan::signal(libc::SIGUSR1, || eprintln!("{}", sylvan::dump()));`

use std::io::{Read, Write};
use std::rc::Rc;
use std::time::Duration;

use sylvan::net::{StreamServer, TcpListener, TcpStream};

fn main() -> std::io::Result<()> {
    // A slow "site": answers each request after 2 s.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = StreamServer::new(listener, |mut conn: TcpStream, _| {
        let mut buf = [0u8; 1024];
        if conn.read(&mut buf).unwrap_or(0) > 0 {
            sylvan::sleep(Duration::from_secs(2));
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    })
    .start()?;
    let _dump_on_usr1 = sylvan::signal(libc::SIGUSR1, || eprintln!("{}", sylvan::dump()))?;

    // Reports go to stderr (or the `log` crate when a logger takes them).
    let detector = sylvan::BlockingDetector::start(Duration::from_millis(100));

    let queue: Rc<sylvan::sync::Queue<u32>> = Rc::new(sylvan::sync::Queue::unbounded());
    let mut workers = Vec::new();
    for i in 0..3 {
        workers.push(
            sylvan::Builder::new()
                .name(format!("fetch-{i}"))
                .spawn(move || {
                    let mut conn = TcpStream::connect(addr)?;
                    conn.write_all(b"GET / HTTP/1.1\r\nHost: demo\r\n\r\n")?;
                    let mut reply = Vec::new();
                    conn.read_to_end(&mut reply)?;
                    Ok::<usize, std::io::Error>(reply.len())
                })
                .expect("spawn"),
        );
    }
    let q = queue.clone();
    let idle = sylvan::Builder::new()
        .name("idle-worker")
        .spawn(move || q.get())
        .expect("spawn");
    let culprit = sylvan::Builder::new()
        .name("parse-page")
        .spawn(|| {
            // The bug: a blocking call on the hub thread. Every greenlet
            // stalls for 300 ms; the detector names this one.
            std::thread::sleep(Duration::from_millis(300));
        })
        .expect("spawn");
    culprit.join().expect("the culprit finishes");

    println!(
        "what the others are doing after the stall:\n{}",
        sylvan::dump()
    );
    drop(detector);
    for w in workers {
        w.kill();
    }
    idle.kill();
    server.stop(Some(Duration::from_millis(100)));
    Ok(())
}
